"""IMP as AP's official base: fresh optimizer state at every rewind, θ_ref = the round's start,
and ``rewind=reinit`` drawing exactly what the model factory draws."""
import pytest
import torch
from torch import nn

import methods
from methods.imp import reinit_seed
from methods.masks import all_prunable_weights
from methods.reinit import reinitialise
from models import available_models, get_model
from test_methods import drive, tiny_model, zeros_of, N_WEIGHTS

LR, WD = 0.05, 5e-4  # drive()'s optimizer: SGD(lr=0.05, momentum=0.9, weight_decay=5e-4)


def first_updates_after_rewinds(method_name: str, stale_momentum: bool = False, **hp) -> list[bool]:
    """For the first step after each rewind: did every weight move exactly as a fresh SGD would?

    With a fresh momentum buffer SGD's first update is w ← w − lr·(g + wd·w) (g already masked).
    The official AP code keeps the optimizer across prune + rewind; ``stale_momentum`` replays that.
    """
    model = tiny_model()
    method = methods.get_method(method_name, 0.5, prune_fraction=0.3, **hp)
    seen, rewound = [], []

    class Spy(type(method)):
        def rewind(self):
            state = {p: dict(s) for p, s in self.optimizer.state.items()}
            super().rewind()
            assert not self.optimizer.state
            if stale_momentum:
                self.optimizer.state.update(state)
            rewound.append(True)

        def after_backward(self, step):
            super().after_backward(step)
            if rewound:
                self.before = {n: (w.detach().clone(), w.grad.clone()) for n, w in self.weights.items()}

        def after_step(self, step):
            if rewound:
                rewound.clear()
                seen.append(all(torch.allclose(w, b - LR * (g + WD * b), rtol=0, atol=1e-7)
                                for (b, g), w in zip(self.before.values(), self.weights.values())))
            super().after_step(step)
    method.__class__ = Spy
    drive(method, model, steps_per_epoch=5, epochs=2)  # rounds: dense, 0.7, 0.5 → two rewinds
    assert zeros_of(model) == round(0.5 * N_WEIGHTS)
    return seen


@pytest.mark.parametrize("name", ["imp", "imp+ap"])
def test_rewind_resets_momentum_and_the_check_catches_the_official_stale_momentum(name):
    assert first_updates_after_rewinds(name) == [True, True]
    assert first_updates_after_rewinds(name, rewind="reinit") == [True, True]
    # the official code's behaviour (optimizer kept across prune + rewind) fails the same check
    assert first_updates_after_rewinds(name, stale_momentum=True) == [False, False]


def test_imp_ap_measures_movement_from_the_rewind_point_of_each_round(monkeypatch):
    model = tiny_model()
    theta0 = {n: w.detach().clone() for n, w in all_prunable_weights(model).items()}
    method = methods.get_method("imp+ap", 0.5, prune_fraction=0.3)
    references, masks_before = [], []
    real = methods.ap.ap_keep_masks

    def spy(kept, proposed, scores, weights, reference, share, scope):
        references.append({n: t.clone() for n, t in reference.items()})
        masks_before.append({n: m.clone() for n, m in kept.items()})
        return real(kept, proposed, scores, weights, reference, share, scope)
    monkeypatch.setattr(methods.ap, "ap_keep_masks", spy)
    drive(method, model, steps_per_epoch=5, epochs=2)
    assert len(references) == 2
    for ref, kept in zip(references, masks_before):  # θ0 ⊙ the mask the round trained with
        assert all(torch.equal(ref[n], theta0[n] * kept[n]) for n in theta0)
    assert [e.by_ap for e in method.ap_events] == [round(0.1 * e.removed) for e in method.ap_events]


def test_rewind_reinit_draws_a_fresh_factory_initialisation_each_round():
    model = tiny_model()
    theta0 = {n: w.detach().clone() for n, w in all_prunable_weights(model).items()}
    method = methods.get_method("imp+ap", 0.5, prune_fraction=0.3, rewind="reinit", seed=7)
    starts = []

    class Spy(type(method)):
        def rewind(self):
            super().rewind()
            fresh = tiny_model()
            reinitialise(fresh, reinit_seed(7, self.round))
            expected = all_prunable_weights(fresh)
            for n, w in self.weights.items():
                assert torch.equal(w, expected[n] * self.masks[n])
            starts.append({n: w.detach().clone() for n, w in self.weights.items()})
    method.__class__ = Spy
    drive(method, model, steps_per_epoch=5, epochs=2)
    assert len(starts) == 2 and method.rewind_state is None  # no θ0 copy is kept for reinit
    first, second = starts
    alive = {n: method.masks[n].bool() for n in theta0}  # final mask ⊂ both rounds' masks
    assert not any(torch.equal(first[n][alive[n]], theta0[n][alive[n]]) for n in theta0)
    assert not any(torch.equal(first[n][alive[n]], second[n][alive[n]]) for n in theta0)
    assert len({reinit_seed(7, r) for r in range(1, 6)} | {reinit_seed(8, 1)}) == 6


@pytest.mark.parametrize("name", available_models())
def test_reinitialise_reproduces_the_model_factory_and_leaves_the_global_rng_alone(name):
    shape = (1, 28, 28) if name in ("mlp", "lenet5") else (3, 32, 32)
    torch.manual_seed(11)
    expected = get_model(name, shape, 10)
    torch.manual_seed(3)
    model = get_model(name, shape, 10)
    nn.init.zeros_(next(model.parameters()))
    rng = torch.get_rng_state()
    reinitialise(model, 11)
    assert torch.equal(torch.get_rng_state(), rng)
    got, want = model.state_dict(), expected.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_reinit_with_late_rewinding_is_a_one_line_error():
    with pytest.raises(ValueError, match="rewind=reinit draws a fresh initialisation every round, so "
                                         "rewind_epoch must be 0"):
        methods.get_method("imp+ap", 0.9, rewind="reinit", rewind_epoch=1)
    with pytest.raises(ValueError, match="rewind must be one of weights, reinit"):
        methods.get_method("imp", 0.9, rewind="xavier")
