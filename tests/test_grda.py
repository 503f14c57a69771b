"""The GRDA optimizer and the ``grda`` method: every update rule on hand-set tensors."""
import io

import pytest
import torch
from torch import nn

import methods
from benchmark.engine import train
from benchmark.cli import main
from benchmark.spec import RunSpec
from methods.base import OptimizerConfig
from methods.grda import GRDAMethod, grda_param_groups
from methods.grda_optim import GRDA
from resume import resumed_and_straight

FOREACH = [False, True]


def soft(a: torch.Tensor, g: float) -> torch.Tensor:
    """sign(a)·max(|a| − g, 0), written independently of the optimizer."""
    return torch.sign(a) * torch.clamp(a.abs() - g, min=0)


def one_tensor(values, dtype=torch.float32):
    return nn.Parameter(torch.tensor(values, dtype=dtype))


def step_with(opt, params, grads):
    for p, g in zip(params, grads):
        p.grad = None if g is None else torch.as_tensor(g, dtype=p.dtype)
    opt.step()


def tiny_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))


def train_steps(model, opt, steps, lrs=None, seed=1):
    gen = torch.Generator().manual_seed(seed)
    for i in range(steps):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[i]
        x = torch.randn(8, 6, generator=gen).to(next(model.parameters()).dtype)
        y = torch.randint(0, 3, (8,), generator=gen)
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


# ----------------------------------------------------------------------------------------------
# the optimizer

@pytest.mark.parametrize("foreach", FOREACH)
def test_c_zero_is_exactly_sgd_without_momentum_or_weight_decay(foreach):
    a, b = tiny_net(), tiny_net()
    lrs = [0.1] * 5 + [0.03] * 5 + [0.2] * 5  # lr changes mid-run
    train_steps(a, GRDA(a.parameters(), lr=0.1, c=0.0, mu=0.7, foreach=foreach), 15, lrs)
    train_steps(b, torch.optim.SGD(b.parameters(), lr=0.1, momentum=0, weight_decay=0), 15, lrs)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("momentum, lr_scale, scale", [
    (0.9, 0.0, (1 - 0.9) ** -0.5), (0.0, 0.0, 1.0), (0.9, 1.0, 1.0), (0.9, 2.5, 2.5)])
def test_the_methods_optimizer_at_c_zero_is_exactly_sgd_at_the_scaled_lr(momentum, lr_scale, scale):
    a, b = tiny_net(), tiny_net()
    config = OptimizerConfig(lr=0.1, momentum=momentum, weight_decay=5e-4)
    opt = methods.get_method("grda", lr_scale=lr_scale).make_optimizer(a, config)
    assert [g["c"] for g in opt.param_groups] == [0.0, 0.0]
    assert [g["lr_scale"] for g in opt.param_groups] == [scale, scale]
    train_steps(a, opt, 6)
    train_steps(b, torch.optim.SGD(b.parameters(), lr=0.1 * scale), 6)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("foreach", FOREACH)
def test_constant_lr_closed_form_threshold_and_soft_thresholded_dual_average(foreach):
    lr, c, mu = 0.25, 0.3, 0.6
    w0 = [0.5, -0.25, 0.125, 1.0, -1.0, 0.0]
    grads = [[0.5, 0.25, -1.0, 0.0, 0.5, 0.125],
             [0.25, -0.5, 0.5, -0.25, 0.0, 0.125],
             [-0.125, 0.25, 0.5, 0.5, -1.0, -0.5],
             [0.5, 0.0, -0.25, 0.25, 0.25, 0.0],
             [0.0, 0.125, 0.5, -0.5, -0.5, 0.25]]  # dyadic: w0 − lr·Σg is exact in fp32
    p = one_tensor(w0)
    opt = GRDA([p], lr=lr, c=c, mu=mu, foreach=foreach)
    for n, g in enumerate(grads, start=1):
        step_with(opt, [p], [g])
        group = opt.param_groups[0]
        assert group["step"] == n
        assert group["threshold"] == pytest.approx(c * lr ** 0.5 * (n * lr) ** mu, rel=1e-12)
        dual = torch.tensor(w0) - lr * torch.tensor(grads[:n]).sum(0)
        assert torch.equal(opt.state[p]["accumulator"], dual)
        assert torch.equal(p.detach(), soft(dual, group["threshold"]))
    assert (p == 0).sum() == 2 and (p != 0).sum() == 4  # both sides of the threshold are exercised


def test_an_lr_drop_slows_the_threshold_by_the_increment_formulas_factor():
    lr, c, mu, n1, m = 0.1, 0.02, 0.55, 7, 5
    opts = []
    for later_lr in (lr, lr / 10):
        p = one_tensor([1.0, -2.0])
        opt = GRDA([p], lr=lr, c=c, mu=mu)
        for n in range(n1 + m):
            if n == n1:
                opt.param_groups[0]["lr"] = later_lr
            step_with(opt, [p], [[0.0, 0.0]])
        opts.append(opt)
    before = c * lr ** 0.5 * (n1 * lr) ** mu  # both runs share the first n1 steps
    same, dropped = (o.param_groups[0]["threshold"] - before for o in opts)
    assert dropped == pytest.approx(c * (lr / 10) ** (mu + 0.5) * ((n1 + m) ** mu - n1 ** mu), rel=1e-12)
    assert dropped / same == pytest.approx(0.1 ** (mu + 0.5), rel=1e-12)


def test_a_zeroed_weight_returns_when_its_accumulator_crosses_the_threshold():
    p = one_tensor([0.1])
    opt = GRDA([p], lr=1.0, c=0.1, mu=0.6)  # lr = 1: G_n = 0.1·n^0.6
    step_with(opt, [p], [[0.05]])  # a = 0.05 < G_1 = 0.1
    assert p.item() == 0.0
    step_with(opt, [p], [[0.0]])  # still inside the threshold
    assert p.item() == 0.0
    step_with(opt, [p], [[-0.5]])  # a = 0.55 > G_3
    g3 = 0.1 * 3 ** 0.6
    assert opt.param_groups[0]["threshold"] == pytest.approx(g3, rel=1e-12)
    assert p.item() == pytest.approx(0.55 - g3, rel=1e-6) and p.item() > 0


@pytest.mark.parametrize("c", [0.0, 0.01])
def test_bf16_parameters_keep_an_fp32_accumulator(c):
    p = one_tensor([1.0, -1.0], dtype=torch.bfloat16)
    opt = GRDA([p], lr=1.0, c=c, mu=0.7)
    for _ in range(16):  # 2^-10 per step: lost against 1.0 in bf16 (8-bit mantissa), kept in fp32
        step_with(opt, [p], [[2.0 ** -10, -2.0 ** -10]])
    acc = opt.state[p]["accumulator"]
    assert acc.dtype == torch.float32 and p.dtype == torch.bfloat16
    assert torch.equal(acc, torch.tensor([1 - 2.0 ** -6, -1 + 2.0 ** -6]))
    expected = soft(acc, opt.param_groups[0]["threshold"]).to(torch.bfloat16)
    assert torch.equal(p.detach(), expected)
    assert p[0].item() < 1.0  # plain bf16 SGD would still be at exactly 1.0
    sgd = one_tensor([1.0], dtype=torch.bfloat16)
    sgd_opt = torch.optim.SGD([sgd], lr=1.0)
    for _ in range(16):
        step_with(sgd_opt, [sgd], [[2.0 ** -10]])
    assert sgd.item() == 1.0


def test_fp32_parameters_need_no_accumulator_until_something_is_thresholded():
    p = one_tensor([0.5, -0.5])
    opt = GRDA([p], lr=0.5, c=0.0, mu=0.7)
    step_with(opt, [p], [[0.25, 0.25]])
    assert "accumulator" not in opt.state[p]  # w = a exactly
    opt.param_groups[0]["c"] = 0.1  # from now on the threshold grows
    step_with(opt, [p], [[0.5, 0.0]])
    dual = torch.tensor([0.5 - 0.125 - 0.25, -0.5 - 0.125])
    assert torch.equal(opt.state[p]["accumulator"], dual)
    assert torch.equal(p.detach(), soft(dual, opt.param_groups[0]["threshold"]))


def test_a_none_gradient_skips_the_parameter_but_the_group_clock_runs_on():
    a, b = one_tensor([0.5, -0.5]), one_tensor([0.375, -0.25])
    opt = GRDA([a, b], lr=0.5, c=0.05, mu=0.6)
    step_with(opt, [a, b], [[0.0, 0.0], [0.25, 0.0]])
    b_after_1, acc_after_1 = b.detach().clone(), opt.state[b]["accumulator"].clone()
    step_with(opt, [a, b], [[0.0, 0.0], None])
    step_with(opt, [a, b], [[0.0, 0.0], None])
    assert torch.equal(b.detach(), b_after_1)  # untouched: neither updated nor re-thresholded
    assert torch.equal(opt.state[b]["accumulator"], acc_after_1)
    group = opt.param_groups[0]
    assert group["step"] == 3
    assert group["threshold"] == pytest.approx(0.05 * 0.5 ** 0.5 * (3 * 0.5) ** 0.6, rel=1e-12)
    step_with(opt, [a, b], [[0.0, 0.0], [0.0, 0.25]])
    dual = torch.tensor([0.375 - 0.125, -0.25 - 0.125])
    assert torch.equal(opt.state[b]["accumulator"], dual)
    assert torch.equal(b.detach(), soft(dual, group["threshold"]))  # the group's G_4, not a G_2 of its own


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_state_dict_round_trip_mid_run_matches_an_uninterrupted_run(dtype):
    def build():
        model = tiny_net().to(dtype)
        return model, GRDA(grda_param_groups(model, c=0.05), lr=0.1, c=0.05, mu=0.55)
    lrs = [0.1] * 6 + [0.01] * 6
    straight, opt = build()
    train_steps(straight, opt, 12, lrs)

    first, opt = build()
    train_steps(first, opt, 6, lrs[:6])
    buffer = io.BytesIO()
    torch.save({"model": first.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    resumed, opt2 = build()
    resumed.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    assert opt2.param_groups[0]["step"] == 6 and opt2.param_groups[0]["threshold"] > 0
    assert all(s["accumulator"].dtype == torch.float32 for s in opt2.state.values() if "accumulator" in s)
    train_steps(resumed, opt2, 6, lrs[6:], seed=2)
    train_steps(first, opt, 6, lrs[6:], seed=2)  # the same continuation without the round trip
    assert all(torch.equal(p, q) for p, q in zip(resumed.parameters(), first.parameters()))
    assert any((p == 0).any() for p in resumed.parameters())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_foreach_and_per_tensor_paths_are_bit_identical(dtype):
    nets = [tiny_net().to(dtype) for _ in FOREACH]
    for net, foreach in zip(nets, FOREACH):
        opt = GRDA(grda_param_groups(net, c=0.1, threshold_all=True), lr=0.1, c=0.1, mu=0.6, foreach=foreach)
        train_steps(net, opt, 8)
    a, b = nets
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert sum(int((p == 0).sum()) for p in a.parameters()) > 0


def test_lr_scale_multiplies_the_step_and_the_thresholds_step_size():
    a, b = one_tensor([0.5, -0.5]), one_tensor([0.5, -0.5])
    opt_a = GRDA([a], lr=0.1, c=0.05, mu=0.6, lr_scale=3.0)
    opt_b = GRDA([b], lr=0.1 * 3.0, c=0.05, mu=0.6)
    for _ in range(4):
        step_with(opt_a, [a], [[0.5, 0.25]])
        step_with(opt_b, [b], [[0.5, 0.25]])
    assert opt_a.param_groups[0]["threshold"] == opt_b.param_groups[0]["threshold"]
    assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -0.1}, "learning rate must be ≥ 0"), ({"c": -1e-3}, "c must be ≥ 0"),
    ({"mu": 0.5}, r"mu must be in \(0.5, 1\)"), ({"mu": 1.0}, r"mu must be in \(0.5, 1\)"),
    ({"mu": 0.4}, r"mu must be in \(0.5, 1\)"), ({"lr_scale": 0.0}, "lr_scale must be > 0"),
])
def test_bad_optimizer_hyperparameters_are_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GRDA([one_tensor([1.0])], **kwargs)


def test_a_bad_param_group_is_a_value_error():
    opt = GRDA([one_tensor([1.0])], lr=0.1, c=0.01, mu=0.6)
    with pytest.raises(ValueError, match="c must be ≥ 0"):
        opt.add_param_group({"params": [one_tensor([2.0])], "c": -0.5})


# ----------------------------------------------------------------------------------------------
# the method

def test_groups_threshold_weights_only_unless_threshold_all():
    net = tiny_net()
    groups = grda_param_groups(net, c=0.02)
    assert [g["c"] for g in groups] == [0.02, 0.0]
    assert [tuple(p.shape) for p in groups[0]["params"]] == [(5, 6), (3, 5)]
    assert len(groups[1]["params"]) == 4  # two biases, BN weight and bias
    (everything,) = grda_param_groups(net, c=0.02, threshold_all=True)
    assert len(everything["params"]) == len(list(net.parameters()))


def test_the_method_has_no_masks_no_prune_events_and_ignores_momentum():
    method = methods.get_method("grda", target_sparsity=0.9, c=0.01)
    assert isinstance(method, GRDAMethod) and not method.has_prune_events
    net = tiny_net()
    opt = method.make_optimizer(net, OptimizerConfig(lr=0.05, momentum=0.9, weight_decay=5e-4))
    assert type(opt) is GRDA and opt.param_groups[0]["lr"] == 0.05
    assert set(opt.defaults) == {"lr", "c", "mu", "lr_scale", "foreach"}  # no momentum, no decay
    method.attach(net, opt, steps_per_epoch=10, total_epochs=1)
    assert method.masks == {} and method.state_dict() == {"masks": {}, "param_masks": {}}


def test_a_target_with_c_zero_outside_the_harness_is_an_error():
    with pytest.raises(ValueError, match="c = 0 with target sparsity 0.9"):
        methods.get_method("grda", target_sparsity=0.9)
    assert methods.get_method("grda").hp.c == 0.0  # target 0: plain SGD


@pytest.mark.parametrize("args, message", [
    (["--mu", "0.5"], "grda.mu must be in (0.5, 1), got 0.5"),
    (["--hp", "grda.mu=1"], "grda.mu must be in (0.5, 1), got 1.0"),
    (["--c", "-0.1"], "grda.c must be ≥ 0, got -0.1"),
    (["--lr-scale", "-1"], "grda.lr_scale must be ≥ 0, got -1.0"),
])
def test_bad_grda_hyperparameters_are_one_cli_line_with_exit_2(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    argv = ["--dataset", "synthetic", "--methods", "grda", "--seeds", "0", *args, "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


FAST = dict(dataset="synthetic", model="mlp", epochs=2, batch_size=64, lr=0.1)


def test_a_run_reports_the_exact_zeros_the_soft_threshold_leaves():
    result = train.run(RunSpec(method="grda", method_hparams={"c": 0.01}, target_sparsity=0.5, **FAST))
    m = result["metrics"]
    assert result["status"] == "complete" and result["label"] == "grda[c=0.01]"
    assert 0.2 < m["sparsity"] < 1 and m["sparsity_all"] < m["sparsity"]  # biases are not thresholded
    assert m["params"] - m["params_nonzero"] == pytest.approx(m["sparsity_all"] * m["params"])


def test_an_interrupted_grda_run_resumes_exactly(tmp_path):
    spec = RunSpec(method="grda", method_hparams={"c": 0.01}, checkpoint_every=1, **{**FAST, "epochs": 3})
    resumed, straight = resumed_and_straight(spec, tmp_path)
    assert resumed["metrics"]["sparsity"] == straight["metrics"]["sparsity"] > 0


def test_cli_strings_become_typed_hyperparameters_with_the_documented_defaults():
    hp = methods.make_hparams("grda", c="0.02", threshold_all="true")
    assert hp.c == 0.02 and hp.threshold_all is True and hp.mu == 0.51 and hp.lr_scale == 0.0
