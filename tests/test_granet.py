"""GraNet, GraNet-ST, RigL and SET: exact checks on tiny hand-built tensors and models."""
import math

import pandas as pd
import pytest
import torch
from torch import nn

import methods
from benchmark.cli import main
from methods.budgets import layer_counts, layer_densities
from methods.masks import drop_and_grow, lowest_indices, prune_lowest, random_masks
from methods.schedules import PruneWindow, cosine_decay
from tests.test_methods import N_WEIGHTS, drive, tiny_model, zeros_of

SHAPES = {"0.weight": (6, 8), "2.weight": (4, 6), "4.weight": (3, 4)}  # tiny_model's prunable tensors


def masked_zeros(method) -> int:
    return sum(int((m == 0).sum()) for m in method.masks.values())


def layer_nnz(method) -> dict[str, int]:
    return {n: int(m.sum()) for n, m in method.masks.items()}


def assert_masked_weights_and_momentum_are_zero(method, opt) -> None:
    for name, w in method.weights.items():
        pruned = method.masks[name] == 0
        assert torch.all(w[pruned] == 0), name
        assert torch.all(opt.state[w]["momentum_buffer"][pruned] == 0), name


# ---------------------------------------------------------------------------- shared pieces
def test_cosine_death_rate_by_hand():
    assert cosine_decay(0, 100, 0.5, 0.005) == 0.5
    assert cosine_decay(50, 100, 0.5, 0.005) == pytest.approx(0.005 + 0.495 * 0.5)
    assert cosine_decay(25, 100, 0.5, 0.005) == pytest.approx(0.005 + 0.495 * (1 + math.cos(math.pi / 4)) / 2)
    assert cosine_decay(100, 100, 0.5, 0.005) == pytest.approx(0.005)
    assert cosine_decay(150, 100, 0.5, 0.005) == pytest.approx(0.005)


def test_update_steps_are_the_window_events_after_step_0_then_every_dt_on_the_same_grid():
    w = PruneWindow(start=0, interval=10, end=35)  # events 0, 10, 20, 30 and tf = 35
    until_end = [t for t in range(0, 80) if w.update_at(t, last=59)]
    assert until_end == [10, 20, 30, 35, 40, 50]
    assert [t for t in range(0, 80) if w.update_at(t, last=w.end)] == [10, 20, 30, 35]
    late = PruneWindow(start=5, interval=10, end=35)  # t0 > 0: the event at t0 counts
    assert [t for t in range(0, 60) if late.update_at(t, last=50)] == [5, 15, 25, 35, 45]


def test_erk_counts_by_hand_including_layers_made_dense():
    shapes = {"first": (10, 2), "mid": (10, 10), "last": (2, 10)}  # raw ERK 0.6, 0.2, 0.6
    # keep 90 of 140: ε = 90/44 makes first/last exceed 1 → dense, one at a time; then mid keeps
    # the remaining 50 of 100 (ε = 50/20 = 2.5, density 0.5).
    assert layer_densities(shapes, 90, "erk") == pytest.approx({"first": 1.0, "mid": 0.5, "last": 1.0})
    assert layer_counts(shapes, 90, "erk") == {"first": 20, "mid": 50, "last": 20}
    # no dense layer: ε = 21/19; exact counts 10·ε = 11.05 and 9·ε = 9.95 → 11 and 10 (largest remainder)
    assert layer_counts({"w1": (6, 4), "w2": (3, 6)}, 21, "erk") == {"w1": 11, "w2": 10}
    # uniform: 1.5, 1.5, 2 → the tied remainders go in module order
    assert layer_counts({"a": (3,), "b": (3,), "c": (4,)}, 5, "uniform") == {"a": 2, "b": 1, "c": 2}
    # tiny_model at density 0.5: ε = 42/31; 14ε = 18.97, 10ε = 13.55, 7ε = 9.48 → 19, 14, 9
    assert layer_counts(SHAPES, 42, "erk") == {"0.weight": 19, "2.weight": 14, "4.weight": 9}


def test_random_masks_have_exact_counts_a_dense_erk_layer_and_leave_the_global_rng_alone():
    weights = {"first": torch.ones(10, 2), "mid": torch.ones(10, 10), "last": torch.ones(2, 10)}
    rng = torch.get_rng_state()
    masks = random_masks(weights, 50 / 140, 140, "erk", torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), rng)
    assert {n: int(m.sum()) for n, m in masks.items()} == {"first": 20, "mid": 50, "last": 20}
    again = random_masks(weights, 50 / 140, 140, "erk", torch.Generator().manual_seed(0))
    other = random_masks(weights, 50 / 140, 140, "erk", torch.Generator().manual_seed(1))
    assert torch.equal(masks["mid"], again["mid"]) and not torch.equal(masks["mid"], other["mid"])
    with pytest.raises(ValueError, match="unreachable"):  # 0.9 of 200 cannot come from these 140
        random_masks(weights, 0.9, 200, "erk", torch.Generator())


def test_drop_and_grow_by_hand_with_index_tie_breaking():
    active = torch.tensor([1, 1, 1, 0, 0, 1, 0, 1], dtype=torch.bool)
    magnitude = torch.tensor([0.5, 0.2, 0.1, 0.0, 0.0, 0.2, 0.0, 0.9])
    grad = torch.tensor([9.0, 0.6, 0.5, 0.6, 0.6, 9.0, 0.1, 9.0])
    # drop 0.1 (index 2) and, of the tied 0.2s, index 1; grow among {1, 2, 3, 4, 6}: the tied 0.6s
    # at 1, 3, 4 → 1 (just dropped, back again) and 3
    new = drop_and_grow(active, magnitude, grad, 2)
    assert new.tolist() == [True, True, False, True, False, True, False, True]
    assert drop_and_grow(active, magnitude, grad, 0).tolist() == active.tolist()


@pytest.mark.parametrize("k", [0, 1, 7, 60, 125, 999, 2000])
def test_lowest_indices_is_exactly_what_prune_lowest_removes(k):
    gen = torch.Generator().manual_seed(k)
    tied = torch.randint(0, 5, (2000,), generator=gen).float()  # many ties at every threshold
    tied[::3] = float("inf")
    # the strided sample sees only the low values: its bound holds < k entries → full fallback
    adversarial = torch.where(torch.arange(2000) % 8 == 0, torch.arange(2000) / 1e4, torch.ones(2000))
    for scores in (tied, adversarial, torch.rand(2000, generator=gen)):
        expected = (~prune_lowest(scores, k)).nonzero().flatten()
        assert torch.equal(lowest_indices(scores, k), expected)


# ---------------------------------------------------------------------------- regeneration
def one_layer(name: str, rate: float, seed: int = 0):
    """``name`` on one bias-free Linear(4, 2) with a hand-built mask and weights; lr 0 keeps W fixed."""
    model = nn.Sequential(nn.Linear(4, 2, bias=False))
    method = methods.get_method(name, 0.25, death_rate=rate, death_rate_final=rate, seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
    method.attach(model, opt, 10, 1)  # Δt = 1: every step from 1 to 9 regenerates
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.5, -0.2, 0.1, 0.0], [0.0, 0.2, -0.3, 0.0]]))
    method.set_masks({"0.weight": torch.tensor([[1, 1, 1, 0], [0, 1, 1, 0]], dtype=torch.bool)})
    return model, method, opt


def test_regeneration_grows_at_the_largest_dense_gradients_keeps_counts_and_zeroes_new_weights():
    model, method, opt = one_layer("rigl", 0.4)  # nnz 5 → m = ⌈0.4·5⌉ = 2
    w = model[0].weight
    w.grad = torch.tensor([[9.0, 0.6, 0.5, 0.6], [0.6, 9.0, 9.0, 0.1]])  # hand-built dense gradient
    method.after_backward(1)  # reads the dense gradient, then masks it
    assert w.grad[0, 3] == 0 and w.grad[1, 0] == 0
    opt.step()
    method.after_step(1)
    # drop |W| 0.1 (index 2) and the first tied 0.2 (index 1); grow the tied 0.6s at 1 and 3
    assert method.masks["0.weight"].tolist() == [[1, 1, 0, 1], [0, 1, 1, 0]]
    momentum = opt.state[w]["momentum_buffer"]
    assert w[0, 3] == 0 and momentum[0, 3] == 0            # newly grown: zero weight and momentum
    assert w[0, 1] == -0.2 and momentum[0, 1] == pytest.approx(0.6)  # dropped and regrown: kept
    assert w[0, 2] == 0 and momentum[0, 2] == 0            # dropped: zero
    assert torch.equal(w[1], torch.tensor([0.0, 0.2, -0.3, 0.0]))


def test_regeneration_needs_the_gradient_of_its_own_step():
    model, method, opt = one_layer("rigl", 0.4)
    with pytest.raises(RuntimeError, match="needs the dense gradients"):
        method.after_step(1)  # no after_backward(1): nothing to grow by


def test_set_grows_at_seeded_random_inactive_positions():
    def run(seed):
        model, method, opt = one_layer("rigl", 0.4)
        method = methods.get_method("set", 0.25, death_rate=0.4, death_rate_final=0.4, seed=seed)
        method.attach(model, opt, 10, 1)
        method.set_masks({"0.weight": torch.tensor([[1, 1, 1, 0], [0, 1, 1, 0]], dtype=torch.bool)})
        grown = []
        for step in range(1, 10):
            model[0].weight.grad = torch.ones(2, 4)
            before = method.masks["0.weight"].bool().clone()
            method.after_backward(step)
            opt.step()
            method.after_step(step)
            after = method.masks["0.weight"].bool()
            assert int(after.sum()) == 5
            grown.append((after & ~before).nonzero().tolist())
        return grown
    assert run(0) == run(0)
    assert run(0) != run(1)
    assert any(run(0))  # positions do change


# ---------------------------------------------------------------------------- granet on a tiny model
def test_granet_follows_the_schedule_and_regeneration_keeps_every_layer_count():
    model = tiny_model()
    method = methods.get_method("granet", 0.8, start_frac=0.25, end_frac=0.75, interval=5)
    after_prune = {}

    class Spy(type(method)):
        def prune_to(self, sparsity):
            super().prune_to(sparsity)
            after_prune["nnz"] = layer_nnz(self)

    method.__class__ = Spy
    zeros, regrown = {}, {}

    def on_step(step, method, model, opt):
        zeros[step] = masked_zeros(method) if method.masks else 0
        if method.masks:
            assert layer_nnz(method) == after_prune["nnz"], step  # regeneration moved no weight across layers
            assert_masked_weights_and_momentum_are_zero(method, opt)
            regrown[step] = zeros_of(model) - zeros[step]  # active weights still at zero
    drive(method, model, on_step=on_step)  # 40 steps: events at 10, 15, 20, 25, 30 (n = 4)
    assert zeros[9] == 0
    for event, step in enumerate([10, 15, 20, 25, 30]):
        expected = 0.8 + (0.0 - 0.8) * (1 - event / 4) ** 3
        assert zeros[step] == round(expected * N_WEIGHTS), step
        assert zeros[step + 4] == zeros[step]
    assert regrown[15] > 0  # regeneration happened and grew zero-valued weights
    assert zeros[40] == round(0.8 * N_WEIGHTS)
    assert zeros_of(model) >= round(0.8 * N_WEIGHTS)


def test_granet_with_death_rate_0_is_gmp_weight_for_weight():
    def train(name, **hp):
        model = tiny_model()
        drive(methods.get_method(name, 0.8, seed=3, **hp), model)
        return [p.detach().clone() for p in model.parameters()]
    gmp = train("gmp", interval=3)
    assert all(torch.equal(a, b) for a, b in zip(gmp, train("granet", interval=3, death_rate=0.0)))
    assert not all(torch.equal(a, b) for a, b in zip(gmp, train("granet", interval=3)))


def test_granet_st_starts_from_a_random_erk_mask_at_half_density():
    model = tiny_model()
    method = methods.get_method("granet-st", 0.8)
    rng = torch.get_rng_state()
    method.attach(model, torch.optim.SGD(model.parameters(), lr=0.1), 10, 4)
    assert torch.equal(torch.get_rng_state(), rng)  # data order and init of the grid untouched
    assert layer_nnz(method) == {"0.weight": 19, "2.weight": 14, "4.weight": 9}
    magnitude = methods.magnitude_masks(tiny_model(), 0.5)
    assert not all(torch.equal(method.masks[n].bool(), magnitude[n]) for n in magnitude)
    drive(methods.get_method("granet-st", 0.8), model)
    assert zeros_of(model) >= round(0.8 * N_WEIGHTS)


@pytest.mark.parametrize("name", ["rigl", "set"])
def test_rigl_and_set_keep_their_density_constant(name):
    model = tiny_model()
    method = methods.get_method(name, 0.8)
    counts, masks = [], []

    def on_step(step, method, model, opt):
        assert_masked_weights_and_momentum_are_zero(method, opt)
        counts.append(layer_nnz(method))
        masks.append({n: m.clone() for n, m in method.masks.items()})
    drive(method, model, on_step=on_step)
    assert masked_zeros(method) == round(0.8 * N_WEIGHTS)
    assert all(c == counts[0] for c in counts)
    assert any(not torch.equal(masks[0][n], masks[-1][n]) for n in masks[0])  # connections moved
    assert not method.has_prune_events


def test_checkpoint_state_restores_the_generator():
    model = tiny_model()
    method = methods.get_method("set", 0.8)
    method.attach(model, torch.optim.SGD(model.parameters(), lr=0.1), 10, 4)
    state = method.state_dict()
    draw = torch.rand(5, generator=method.generator)
    method.load_state_dict(state)
    assert torch.equal(torch.rand(5, generator=method.generator), draw)


def test_registry_flags_and_defaults():
    assert {"granet", "granet-st", "rigl", "set"} <= set(methods.available_methods())
    assert methods.get_method("granet", 0.9).has_prune_events
    assert methods.get_method("granet-st", 0.9).hp.initial_sparsity == 0.5
    hp = methods.get_method("granet", 0.9).hp
    assert (hp.death_rate, hp.death_rate_final, hp.growth) == (0.5, 0.005, "gradient")
    assert hp.regrow_until_end
    assert (hp.scope, hp.prune_first, hp.prune_classifier, hp.init_budget) == ("global", True, True, "erk")


@pytest.mark.parametrize("name, target, hp, message", [
    ("granet", 0.9, {"death_rate": 1.0}, "death_rate must be in [0, 1); got 1.0"),
    ("rigl", 0.9, {"death_rate": -0.1}, "death_rate must be in [0, 1)"),
    ("granet", 0.9, {"death_rate_final": 1.5}, "death_rate_final must be in [0, 1)"),
    ("granet", 0.9, {"growth": "momentum"}, "growth must be one of gradient, random"),
    ("granet-st", 0.3, {}, "initial_sparsity 0.5 is above the target sparsity 0.3"),
    ("granet", 0.8, {"initial_sparsity": 0.9}, "initial_sparsity 0.9 is above the target sparsity 0.8"),
    ("set", 0.8, {"start_frac": 0.6}, "need start_frac < end_frac"),
    ("granet", 0.8, {"init_budget": "er"}, "init_budget must be one of uniform, erk"),
])
def test_bad_hyperparameters_are_one_line_errors(name, target, hp, message):
    with pytest.raises(ValueError) as err:
        methods.get_method(name, target, **hp)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_excluded_layers_stay_dense_and_the_target_is_still_met():
    model = tiny_model()
    method = methods.get_method("granet-st", 0.4, prune_first=False, initial_sparsity=0.2, interval=5)
    drive(method, model)  # the 36 weights after the dense first layer (48) give the 34 zeros
    assert masked_zeros(method) == round(0.4 * N_WEIGHTS) and "0.weight" not in method.masks
    assert int((model[0].weight == 0).sum()) == 0
    model = tiny_model()
    rigl = methods.get_method("rigl", 0.8, prune_classifier=False, init_budget="uniform")
    drive(rigl, model)
    assert masked_zeros(rigl) == round(0.8 * N_WEIGHTS) and "4.weight" not in rigl.masks


# ---------------------------------------------------------------------------- the CLI
FAST = ["--dataset", "synthetic", "--epochs", "2", "--batch-size", "64", "--no-progress",
        "--executor", "inline"]


def test_cli_runs_all_four_on_synthetic(tmp_path, capsys):
    out = tmp_path / "res"
    assert main([*FAST, "--methods", "granet", "granet-st", "rigl", "set", "--sparsities", "0.8",
                 "--seeds", "0", "--no-dense-reference", "--no-plots", "--out", str(out)]) == 0
    assert "4 runs: 4 ran, 0 already complete, 0 failed" in capsys.readouterr().out
    board = pd.read_csv(out / "leaderboard.csv").set_index("method")
    assert sorted(board.index) == ["granet", "granet-st", "rigl", "set"]
    assert board["sparsity"].min() >= 0.8 - 1e-6 and board["sparsity"].max() < 0.81
    assert (board["top1"] > 0.2).all()  # chance is 0.1; sparse starts learn slowly in 2 epochs
