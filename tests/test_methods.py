"""The method registry and the magnitude family, driven through the public hook contract."""
import pytest
import torch
from torch import nn

import methods
from methods.imp import imp_round_densities, imp_rounds
from methods.masks import all_prunable_weights

N_WEIGHTS = 8 * 6 + 6 * 4 + 4 * 3  # 84 prunable weights


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))


def zeros_of(model) -> int:
    return sum(int((w == 0).sum()) for w in all_prunable_weights(model).values())


def drive(method, model, steps_per_epoch=10, epochs=4, on_step=None):
    """Train ``model`` with ``method``'s hooks on fixed random data; returns the optimizer."""
    plan = method.plan(epochs)
    opt = method.make_optimizer(model, methods.OptimizerConfig(lr=0.05))
    method.attach(model, opt, steps_per_epoch, plan.total_epochs)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 8, generator=gen), torch.randint(0, 3, (64,), generator=gen)
    step = 0
    for epoch in range(plan.total_epochs):
        for _ in range(steps_per_epoch):
            step += 1
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            method.after_backward(step)
            opt.step()
            method.after_step(step)
            if on_step:
                on_step(step, method, model, opt)
        method.on_epoch_end(epoch)
    return opt


def test_registry_lists_methods_and_rejects_unknown_names():
    assert methods.available_methods() == [
        "demp", "dense", "dnr", "dnr+ap", "gmp", "gmp+ap", "granet", "granet+ap", "granet-st", "granet-st+ap",
        "grda", "imp", "imp+ap", "magnitude", "magnitude+ap", "random", "random+ap", "rigl", "set"]
    assert list(methods.method_descriptions()) == [
        "demp", "dense", "dnr", "gmp", "granet", "granet-st", "grda", "imp", "magnitude", "random", "rigl",
        "set"]
    assert all(methods.method_descriptions().values())
    with pytest.raises(ValueError, match="unknown method 'nope'; choose from: demp, dense, dnr, gmp"):
        methods.get_method("nope")
    with pytest.raises(ValueError, match="has no hyperparameter frac"):
        methods.get_method("gmp", 0.5, frac=0.1)
    with pytest.raises(ValueError, match="scope must be one of"):
        methods.get_method("gmp", 0.5, scope="channel")
    with pytest.raises(ValueError, match="prune_at must be in"):
        methods.get_method("magnitude", 0.5, prune_at=1.5)
    with pytest.raises(ValueError, match="target sparsity"):
        methods.get_method("gmp", 1.0)


def test_hparams_from_cli_strings_and_labels():
    m = methods.get_method("gmp", 0.9, end_frac="0.8", prune_first="false", interval="5")
    assert m.hp.end_frac == 0.8 and m.hp.prune_first is False and m.hp.interval == 5
    assert m.label() == "gmp[end_frac=0.8,interval=5,prune_first=False]"
    assert methods.get_method("gmp", 0.9).label() == "gmp"
    with pytest.raises(ValueError, match="expected true/false"):
        methods.get_method("gmp", 0.9, prune_first="maybe")


def test_dense_never_prunes():
    model = tiny_model()
    drive(methods.get_method("dense"), model)
    assert zeros_of(model) == 0


def test_magnitude_prunes_once_at_prune_at_by_magnitude_and_keeps_the_mask():
    model = tiny_model()
    seen = {}

    def on_step(step, method, model, opt):
        seen[step] = zeros_of(model)
        if step == 20:  # the prune step: the mask must equal the magnitude mask of the weights then
            seen["masks"] = {n: m.bool().clone() for n, m in method.masks.items()}
    method = methods.get_method("magnitude", 0.75, prune_at=0.5)
    drive(method, model, on_step=on_step)  # 40 steps: prune after step 20
    assert seen[19] == 0
    assert seen[20] == round(0.75 * N_WEIGHTS) == seen[40]
    final = {n: (w != 0) for n, w in all_prunable_weights(model).items()}
    assert all(torch.equal(final[n], seen["masks"][n]) for n in final)


def test_magnitude_mask_is_the_top_k_by_magnitude_at_the_prune_step():
    model = tiny_model()
    method = methods.get_method("magnitude", 0.5, prune_at=0.0)  # prune at initialisation
    before = {n: w.detach().clone() for n, w in all_prunable_weights(model).items()}
    expected = methods.magnitude_masks(before, 0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    method.attach(model, opt, 10, 1)
    assert all(torch.equal(method.masks[n].bool(), expected[n]) for n in expected)


def test_random_prunes_exactly_k_reproducibly_and_unlike_magnitude():
    def random_mask(seed):
        model = tiny_model()
        method = methods.get_method("random", 0.5, prune_at=0.0, seed=seed)
        method.attach(model, torch.optim.SGD(model.parameters(), lr=0.1), 10, 1)
        return {n: m.bool() for n, m in method.masks.items()}, model
    a, model = random_mask(0)
    b, _ = random_mask(0)
    c, _ = random_mask(1)
    assert sum(int((~m).sum()) for m in a.values()) == round(0.5 * N_WEIGHTS)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not all(torch.equal(a[n], c[n]) for n in a)
    mag = methods.magnitude_masks(tiny_model(), 0.5)
    assert not all(torch.equal(a[n], mag[n]) for n in a)


def test_gmp_follows_the_cubic_schedule_exactly():
    model = tiny_model()
    method = methods.get_method("gmp", 0.8, start_frac=0.25, end_frac=0.75, interval=5)
    zeros = {}
    drive(method, model, on_step=lambda step, *_: zeros.__setitem__(step, zeros_of(model)))
    # 40 steps: events at 10, 15, 20, 25, 30 (n = 4 after the first)
    assert zeros[9] == 0
    for event, step in enumerate([10, 15, 20, 25, 30]):
        expected = 0.8 + (0.0 - 0.8) * (1 - event / 4) ** 3
        assert zeros[step] == round(expected * N_WEIGHTS), step
        assert zeros[step + 4] == zeros[step]
    assert zeros[40] == round(0.8 * N_WEIGHTS)


def test_gmp_layer_scope_with_a_dense_classifier_meets_the_global_target():
    model = tiny_model()
    method = methods.get_method("gmp", 0.5, scope="layer", prune_classifier=False, interval=5)
    drive(method, model)
    assert zeros_of(model) == pytest.approx(0.5 * N_WEIGHTS, abs=2)
    assert int((model[4].weight == 0).sum()) == 0


def test_imp_round_densities_and_budget():
    assert imp_rounds(0.9, 0.2) == 11  # 0.8^10 = 0.107 > 0.1, 0.8^11 = 0.086
    dens = imp_round_densities(0.9, 0.2)
    assert dens[:3] == pytest.approx([0.8, 0.64, 0.512])
    assert dens[-2] == pytest.approx(0.8 ** 10) and dens[-1] == pytest.approx(0.1)
    assert imp_round_densities(0.0, 0.2) == []
    assert imp_round_densities(0.2, 0.2) == pytest.approx([0.8])
    plan = methods.get_method("imp", 0.9).plan(10)
    assert (plan.total_epochs, plan.lr_cycle_epochs) == (120, 10)


def test_imp_prunes_per_round_rewinds_to_theta0_and_resets_momentum():
    model = tiny_model()
    theta0 = {n: w.detach().clone() for n, w in all_prunable_weights(model).items()}
    method = methods.get_method("imp", 0.5, prune_fraction=0.3)  # densities 0.7, 0.5
    zeros = []

    class Spy(type(method)):
        def rewind(self):
            super().rewind()
            weights = all_prunable_weights(model)
            for n, w in weights.items():  # survivors are back at θ0, pruned ones at zero
                assert torch.equal(w, theta0[n] * self.masks[n])
            assert not self.optimizer.state  # fresh momentum
            zeros.append(zeros_of(model))
    method.__class__ = Spy
    opt = drive(method, model, steps_per_epoch=5, epochs=2)  # 3 rounds × 2 epochs
    assert zeros == [round(0.3 * N_WEIGHTS), round(0.5 * N_WEIGHTS)]
    assert zeros_of(model) == round(0.5 * N_WEIGHTS)
    assert opt.state  # the last round trained after the final rewind


def test_state_dict_roundtrip_restores_masks():
    model = tiny_model()
    method = methods.get_method("magnitude", 0.5, prune_at=0.0)
    method.attach(model, torch.optim.SGD(model.parameters(), lr=0.1), 10, 2)
    state = method.state_dict()
    other = methods.get_method("magnitude", 0.5, prune_at=0.5)
    model2 = tiny_model()
    other.attach(model2, torch.optim.SGD(model2.parameters(), lr=0.1), 10, 2)
    other.load_state_dict(state)
    assert other.pruned and all(torch.equal(other.masks[n], method.masks[n]) for n in method.masks)
    assert zeros_of(model2) == round(0.5 * N_WEIGHTS)


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True),  # gradient path
    lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),                              # gradient path
    lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.9, weight_decay=5e-4),            # after-step path
])
def test_pruned_weights_and_their_optimizer_state_stay_exactly_zero_after_every_step(make_opt):
    model = tiny_model()
    opt = make_opt(model.parameters())
    method = methods.get_method("gmp", 0.7, interval=3)
    method.attach(model, opt, 10, 3)
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    for step in range(1, 31):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        method.after_backward(step)
        opt.step()
        method.after_step(step)
        assert (step >= 3) == bool(method.masks)  # the first event with s > 0 is at step 3
        for name, w in (method.weights.items() if method.masks else []):
            pruned = method.masks[name] == 0
            assert torch.all(w[pruned] == 0), (step, name)
            for value in opt.state[w].values():
                if torch.is_tensor(value) and value.shape == w.shape:
                    assert torch.all(value[pruned] == 0), (step, name)
    assert zeros_of(model) >= round(0.7 * N_WEIGHTS)
