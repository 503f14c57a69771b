"""``dnr``: reactivation, patience, masks, gmp interplay and equivalence, driven through the hooks."""
import pytest
import torch
from torch import nn

import methods
from benchmark.engine import metrics
from benchmark.spec import RunSpec
from methods.masks import all_prunable_weights, magnitude_masks
from resume import resumed_and_straight

GEN = torch.Generator().manual_seed(0)
X, Y = torch.randn(64, 20, generator=GEN), torch.randint(0, 3, (64,), generator=GEN)


def mlp(activation=nn.ReLU, widths=(6, 5, 4, 3), dead=()) -> nn.Sequential:
    """Linear-act-Linear-act-Linear; first-layer units in ``dead`` get bias −100 (dead on any input)."""
    torch.manual_seed(0)
    a, b, c, d = widths
    net = nn.Sequential(nn.Linear(a, b), activation(), nn.Linear(b, c), activation(), nn.Linear(c, d))
    with torch.no_grad():
        for u in dead:
            net[0].bias[u] = -100.0
    return net


def inputs(net):
    return X[:, :net[0].in_features]


def attach(method, net, steps_per_epoch=10, epochs=4, weight_decay=0.0):
    method.set_probe(inputs(net))
    opt = method.make_optimizer(net, methods.OptimizerConfig(lr=0.05, weight_decay=weight_decay))
    method.attach(net, opt, steps_per_epoch, epochs)
    return opt


def train_steps(method, net, opt, first, n):
    for step in range(first, first + n):
        opt.zero_grad()
        nn.functional.cross_entropy(net(inputs(net)), Y).backward()
        method.after_backward(step)
        opt.step()
        method.after_step(step)


def run(method, net, epochs=4, steps_per_epoch=10, **kwargs):
    opt = attach(method, net, steps_per_epoch, epochs, **kwargs)
    train_steps(method, net, opt, 1, epochs * steps_per_epoch)
    return opt


QUIET = dict(lambda_peak=0.0, noise_peak=0.0, check_every=1000)  # checks only when the test says


def test_a_zeroed_unit_that_receives_gradient_revives_under_regrow():
    net = mlp(nn.LeakyReLU, dead=[2])  # LeakyReLU′(0) = 0.01: a zeroed unit still gets gradient
    dnr = methods.get_method("dnr", 0.0, **QUIET)
    opt = attach(dnr, net)
    dnr.check_units()
    assert dnr.tracker.streak["1"].tolist() == [0, 0, 1, 0, 0]
    assert net[0].weight[2].eq(0).all() and net[0].bias[2] == 0 and not dnr.masks and not dnr.param_masks
    train_steps(dnr, net, opt, 1, 5)
    assert net[0].weight[2].ne(0).all()     # it moved off zero: nothing masks it
    dnr.check_units()
    assert dnr.tracker.streak["1"].tolist() == [0] * 5 and dnr.tracker.n_pruned() == 0  # revived


def test_a_unit_dead_for_patience_checks_is_masked_and_stays_zero_with_its_momentum():
    net = mlp(dead=[1])
    dnr = methods.get_method("dnr", 0.0, **{**QUIET, "patience": 2, "lambda_peak": 1e-2, "noise_peak": 1e-3})
    opt = attach(dnr, net)
    train_steps(dnr, net, opt, 1, 2)
    dnr.check_units()
    assert dnr.tracker.streak["1"][1] == 1 and dnr.tracker.n_pruned() == 0
    for p in (net[0].weight, net[0].bias, net[2].weight):
        opt.state[p]["momentum_buffer"].fill_(1.0)  # stale momentum that would move a pruned unit
    dnr.check_units()
    assert dnr.tracker.pruned["1"].tolist() == [False, True, False, False, False]
    assert dnr.masks["0.weight"].sum(dim=1).tolist() == [6, 0, 6, 6, 6]
    assert dnr.masks["2.weight"][:, 1].eq(0).all() and dnr.param_masks["0.bias"].tolist() == [1, 0, 1, 1, 1]
    for p, index in ((net[0].weight, 1), (net[0].bias, 1)):
        assert p[index].eq(0).all() and opt.state[p]["momentum_buffer"][index].eq(0).all()
    train_steps(dnr, net, opt, 3, 10)   # λ and σ on: still exactly zero
    assert net[0].weight[1].eq(0).all() and net[0].bias[1] == 0 and net[2].weight[:, 1].eq(0).all()
    assert opt.state[net[0].weight]["momentum_buffer"][1].eq(0).all()
    dnr.check_units()                    # dead, but masked: skipped
    assert dnr.tracker.streak["1"][1] == 0 and dnr.tracker.pruned["1"][1]
    zeroed = sum(int(s.gt(0).sum()) for s in dnr.tracker.streak.values())  # awaiting: zeroed, not masked
    assert metrics.neuron_sparsity(net) == pytest.approx((dnr.tracker.n_pruned() + zeroed) / 9)


def test_reinit_draws_fresh_weights_once_per_dead_streak_from_its_own_generator():
    net = mlp(dead=[3])
    dnr = methods.get_method("dnr", 0.0, **{**QUIET, "reactivation": "reinit", "patience": 5})
    opt = attach(dnr, net)
    train_steps(dnr, net, opt, 1, 1)
    old = net[0].weight[3].clone()
    rng = torch.get_rng_state()
    dnr.check_units()
    assert torch.equal(rng, torch.get_rng_state())
    fresh = net[0].weight[3].clone()
    assert fresh.ne(0).all() and not torch.equal(fresh, old) and net[0].bias[3] == 0
    assert opt.state[net[0].weight]["momentum_buffer"][3].eq(0).all()
    assert fresh.abs().max() <= 1 / 6 ** 0.5  # PyTorch's Linear init bound 1/√fan_in
    with torch.no_grad():
        net[0].bias[3] = -100.0  # dead again at the next check: same streak, no second draw
    dnr.check_units()
    assert dnr.tracker.streak["1"][3] == 2 and torch.equal(net[0].weight[3], fresh)


def test_zeroed_units_awaiting_their_fate_are_not_preferred_by_magnitude():
    net = mlp(dead=[0])
    with torch.no_grad():
        net[2].bias.fill_(1.0)  # only unit 0 of the first layer is dead
    dnr = methods.get_method("dnr", 0.5, **QUIET)
    attach(dnr, net)
    before = net[0].weight.detach().clone()
    dnr.check_units()
    assert net[0].weight[0].eq(0).all() and dnr.tracker.streak["1"].tolist() == [1, 0, 0, 0, 0]
    assert torch.equal(dnr.scores()["0.weight"], before.abs())  # scored as if never zeroed
    plain = magnitude_masks(dict(dnr.weights), 0.5)
    assert not plain["0.weight"][0].any()                       # plain |W| would prune the whole unit
    as_if = magnitude_masks({**dnr.weights, "0.weight": before}, 0.5)
    masks = dnr.select_masks(0.5)
    assert all(torch.equal(masks[n], as_if[n]) for n in masks) and masks["0.weight"][0].any()


def test_with_no_pressure_and_no_dead_unit_dnr_is_gmp_weight_for_weight():
    def trained(name, **hp):
        net = mlp(widths=(20, 16, 12, 3))
        with torch.no_grad():
            net[0].bias.fill_(1.0)
            net[2].bias.fill_(1.0)  # no unit dies in 40 steps
        method = methods.get_method(name, 0.7, **hp)
        run(method, net, weight_decay=5e-4)
        return net, method
    a, _ = trained("gmp")
    b, dnr = trained("dnr", lambda_peak=0.0, noise_peak=0.0)
    assert dnr.check_every == 3 and dnr.tracker.n_pruned() == 0
    assert all(not s.any() for s in dnr.tracker.streak.values())
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_weight_sparsity_reaches_the_target_and_neuron_sparsity_is_the_masked_share():
    net = mlp(widths=(20, 16, 12, 3), dead=[0, 5, 9])
    dnr = methods.get_method("dnr", 0.6, patience=1)
    opt = attach(dnr, net)
    for step in range(1, 41):
        train_steps(dnr, net, opt, step, 1)
        keep = dnr._unit_keep()
        assert all(dnr.masks[n][~k].eq(0).all() for n, k in keep.items())  # pruned units stay masked
    n = sum(w.numel() for w in all_prunable_weights(net).values())
    zeros = sum(int((w == 0).sum()) for w in all_prunable_weights(net).values())
    assert zeros == round(0.6 * n) and metrics.weight_sparsity(net)[0] == pytest.approx(0.6, abs=0.5 / n)
    assert dnr.tracker.pruned["1"][[0, 5, 9]].all() and dnr.tracker.n_pruned() == 4  # one died on its own
    assert metrics.neuron_sparsity(net) == pytest.approx(4 / 28)


def test_every_unit_dead_at_the_last_prune_event_is_pruned():
    net = mlp(widths=(20, 16, 12, 3), dead=[4])
    dnr = methods.get_method("dnr", 0.5, patience=50, lambda_peak=0.0, noise_peak=0.0)
    run(dnr, net)
    assert dnr.tracker.pruned["1"].nonzero().flatten().tolist() == [4]
    assert metrics.weight_sparsity(net)[0] == pytest.approx(0.5, abs=1e-3)


def test_bad_hyperparameters_are_one_line_errors():
    with pytest.raises(ValueError, match="reactivation must be one of regrow, reinit"):
        methods.get_method("dnr", 0.5, reactivation="revive")
    with pytest.raises(ValueError, match="patience must be in"):
        methods.get_method("dnr", 0.5, patience=0)
    with pytest.raises(ValueError, match="call set_probe"):
        net = mlp()
        methods.get_method("dnr", 0.5).attach(net, torch.optim.SGD(net.parameters(), lr=0.1), 10, 2)


def test_an_interrupted_dnr_run_resumes_exactly(tmp_path):
    spec = RunSpec(method="dnr", target_sparsity=0.8, seed=0, checkpoint_every=1, dataset="synthetic",
                   model="mlp", epochs=3, batch_size=128, method_hparams={"noise_peak": 1e-3})
    resumed, straight = resumed_and_straight(spec, tmp_path)
    assert resumed["metrics"]["sparsity"] == pytest.approx(0.8, abs=1e-5)
    assert all(set(h["dead_units"]) == {"count", "rate"} for h in straight["history"])


def test_an_event_gives_back_the_weights_masked_with_the_largest_magnitude_when_units_overshoot():
    net = mlp(widths=(20, 16, 12, 3))
    dnr = methods.get_method("dnr", 0.5, **QUIET)
    attach(dnr, net)
    values = {n: w.detach().clone() for n, w in dnr.weights.items()}
    dnr.prune_to(0.3)
    n = sum(w.numel() for w in dnr.weights.values())
    masked_before = {k: ~m.bool() for k, m in dnr.masks.items()}
    dnr.tracker.prune(dnr, {"1": torch.arange(16) < 4})           # 4 units: their slices masked too
    unit = {k: ~m for k, m in dnr._unit_keep().items()}
    over = sum(int((m == 0).sum()) for m in dnr.masks.values()) - round(0.3 * n)
    assert over > 0                                                # unit pruning overshot the schedule
    dnr.prune_to(0.3)
    assert sum(int((m == 0).sum()) for m in dnr.masks.values()) == round(0.3 * n)
    assert all(dnr.masks[k][u].eq(0).all() for k, u in unit.items())  # units stay pruned
    back = {k: masked_before[k] & dnr.masks[k].bool() for k in masked_before}
    assert sum(int(b.sum()) for b in back.values()) == over
    given = torch.cat([values[k][b].abs() for k, b in back.items()])
    still = {k: masked_before[k] & ~dnr.masks[k].bool() & ~unit.get(k, torch.zeros_like(b))
             for k, b in back.items()}
    kept_out = torch.cat([values[k][m].abs() for k, m in still.items()])
    assert given.min() >= kept_out.max()                           # the largest |W| when masked come back
    assert all(torch.equal(dnr.weights[k].detach()[b], values[k][b]) for k, b in back.items())  # that value
