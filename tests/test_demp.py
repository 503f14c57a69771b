"""``demp``: exactly the dead units are pruned at each event, never the classifier; calibration."""
import pytest
import torch
from torch import nn

import methods
from benchmark.engine import metrics
from methods.activations import probe_dead_units
from resume import resumed_and_straight

GEN = torch.Generator().manual_seed(1)
X, Y = torch.randn(64, 20, generator=GEN), torch.randint(0, 3, (64,), generator=GEN)


def net_with_dead_units() -> nn.Sequential:
    """20 → 16 → 12 → 3 (+ ReLU after the classifier, whose output 1 never fires)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(),
                        nn.Linear(12, 3), nn.ReLU())
    with torch.no_grad():
        net[0].bias[[2, 7]] = -100.0
        net[4].bias[1] = -100.0  # a "dead" classifier output: never a unit, never pruned
    return net


def test_demp_prunes_exactly_the_dead_units_at_each_event_and_never_the_classifier():
    net = net_with_dead_units()
    demp = methods.get_method("demp", 0.0, lambda_peak=1e-2, noise_peak=1e-4, prune_every=5)
    demp.set_probe(X)
    opt = demp.make_optimizer(net, methods.OptimizerConfig(lr=0.05, weight_decay=0.0))
    demp.attach(net, opt, steps_per_epoch=10, total_epochs=4)      # DemP checks at step 0
    assert demp.tracker.pruned["1"].nonzero().flatten().tolist() == [2, 7]
    assert demp.tracker.pruned["3"].sum() == 0 and demp.masks["2.weight"][:, [2, 7]].eq(0).all()
    events = []
    for step in range(1, 41):
        opt.zero_grad()
        nn.functional.cross_entropy(net(X), Y).backward()
        demp.after_backward(step)
        opt.step()
        if step == 9:
            with torch.no_grad():
                net[2].bias[4] = -100.0  # unit 4 of the second layer dies before the step-10 event
        before = {k: v.clone() for k, v in demp.tracker.pruned.items()}
        demp.after_step(step)
        if step % 5 == 0:
            # masking dead units keeps the probe's activations, so the detector run after the event
            # sees what the event saw: the newly pruned units are exactly the dead, unpruned ones
            dead = probe_dead_units(net, X)
            new = {k: demp.tracker.pruned[k] & ~before[k] for k in before}
            for k in before:
                assert torch.equal(new[k], dead[k] & ~before[k]), (step, k)
            events.append((step, {k: v.nonzero().flatten().tolist() for k, v in new.items() if v.any()}))
    assert (10, {"3": [4]}) in events
    assert "5" not in demp.tracker.pruned and "4.bias" not in demp.param_masks  # the classifier's ReLU
    assert demp.masks["4.weight"][1].sum() == 12 - int(demp.tracker.pruned["3"].sum())  # only columns go
    assert net[4].weight[1].ne(0).sum() == 12 - int(demp.tracker.pruned["3"].sum())
    hidden = 16 + 12
    assert metrics.neuron_sparsity(net) == pytest.approx(demp.tracker.n_pruned() / hidden)


def test_demp_declares_its_calibration_and_runs_without_pressure():
    cls = methods.get_method_class("demp")
    assert cls.calibration.hparam == "lambda_peak" and cls.calibration.low < cls.calibration.high
    assert methods.make_hparams("demp").lambda_peak == 0.0
    net = net_with_dead_units()
    demp = methods.get_method("demp", 0.0, noise_peak=0.0)      # λ_peak = 0, target 0: the floor
    demp.set_probe(X)
    opt = demp.make_optimizer(net, methods.OptimizerConfig(lr=0.05))
    demp.attach(net, opt, steps_per_epoch=10, total_epochs=2)
    assert demp.prune_every == 3 and demp.pressure.lam(5) == 0.0
    assert demp.tracker.n_pruned() >= 2                           # the two units dead from the start


def test_an_interrupted_demp_run_resumes_exactly(tmp_path):
    from benchmark.spec import RunSpec
    spec = RunSpec(method="demp", seed=0, checkpoint_every=1, dataset="synthetic", model="mlp", epochs=3,
                   batch_size=128, method_hparams={"lambda_peak": 0.05, "noise_peak": 1e-3})
    resumed, straight = resumed_and_straight(spec, tmp_path)
    assert resumed["metrics"]["neuron_sparsity"] == straight["metrics"]["neuron_sparsity"] > 0
