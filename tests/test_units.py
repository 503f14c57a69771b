"""The dead-unit detector, unit structure, unit masks, structured MACs and the death pressure."""
import pytest
import torch
from torch import nn

from benchmark.engine import metrics
from benchmark.engine.probe import PROBE_SIZE, dead_units_entry, probe_inputs
from benchmark.data.containers import Split
from methods.activations import ActivationMonitor, probe_dead_units, unit_signal
from methods.pressure import DeathPressure
from methods.schedules import one_cycle
from methods.units import unit_groups, unit_keep_masks, zero_units
from models import get_model


def negative_bias_mlp(activation: nn.Module) -> nn.Sequential:
    """4 → 5 hidden units (units 1 and 3 dead: bias −10 beats |w·x| ≤ 0.4) → 2 classes."""
    net = nn.Sequential(nn.Linear(4, 5), activation, nn.Linear(5, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.linspace(-0.1, 0.1, 20).view(5, 4))
        net[0].bias.copy_(torch.tensor([1.0, -10.0, 0.0, -10.0, 0.5]))
    return net


def probe_x(n: int = 64) -> torch.Tensor:
    return torch.rand(n, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.mark.parametrize("activation", [nn.ReLU(), nn.LeakyReLU(0.01), nn.SiLU()])
def test_detector_returns_exactly_the_units_with_negative_biases(activation):
    dead = probe_dead_units(negative_bias_mlp(activation), probe_x(), batch_size=10)
    assert list(dead) == ["1"] and dead["1"].tolist() == [False, True, False, True, False]


def test_a_conv_channel_is_dead_only_if_no_sample_and_no_position_is_positive():
    net = nn.Sequential(nn.Conv2d(1, 3, 1), nn.ReLU())
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([1.0, 1.0, -1.0]).view(3, 1, 1, 1))
        net[0].bias.copy_(torch.tensor([-0.5, -2.0, 0.0]))
    x = torch.zeros(3, 1, 4, 4)
    x[2, 0, 3, 1] = 1.0  # one position of one sample lifts channel 0 above 0 (1 − 0.5)
    assert probe_dead_units(net, x, batch_size=1)["1"].tolist() == [False, True, True]
    x[1, 0, 0, 0] = -0.5  # channel 2 (−x): one negative input revives it
    assert probe_dead_units(net, x, batch_size=2)["1"].tolist() == [False, True, False]


def test_detector_watches_the_pre_activation_of_activations_without_an_exact_zero():
    x = torch.tensor([[0.04]])
    relu, silu = nn.ReLU(), nn.SiLU()
    assert unit_signal(relu, (x,), relu(x)) is not x and torch.equal(unit_signal(silu, (x,), silu(x)), x)
    net = nn.Sequential(nn.Linear(1, 1), nn.SiLU())
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.fill_(0.0)
    # SiLU(0.04) ≈ 0.0204 ≤ eps = 0.03, but the pre-activation 0.04 > eps: alive
    assert probe_dead_units(net, x, eps=0.03)["1"].tolist() == [False]
    assert probe_dead_units(net, x, eps=0.05)["1"].tolist() == [True]


def test_detector_restores_training_mode_and_is_invisible_to_the_dynamic_rate():
    net = negative_bias_mlp(nn.ReLU()).train()
    monitor = ActivationMonitor(net)
    monitor.count_zeros = True
    probe_dead_units(net, probe_x())
    assert net.training and monitor.zero_rate() != monitor.zero_rate()  # NaN: nothing counted
    net(probe_x(8))
    assert 0 < monitor.zero_rate() < 1


def test_probe_is_a_fixed_slice_and_the_history_entry_counts_dead_units():
    split = Split(torch.arange(2000.0).view(2000, 1, 1, 1), torch.zeros(2000, dtype=torch.long))
    a, b = probe_inputs(split), probe_inputs(split)
    assert a.shape[0] == PROBE_SIZE == 1536 and torch.equal(a, b) and len(set(a.flatten().tolist())) == 1536
    small = Split(torch.ones(10, 1, 1, 1), torch.zeros(10, dtype=torch.long))
    assert probe_inputs(small) is small.x
    assert dead_units_entry(negative_bias_mlp(nn.ReLU()), probe_x()) == {"count": 2, "rate": 0.4}


# ---------------------------------------------------------------------------------------- structure

def bn_convnet() -> nn.Module:
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
            self.bn1, self.act1 = nn.BatchNorm2d(4), nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(4, 3, 3, padding=1, bias=False)
            self.bn2, self.act2 = nn.BatchNorm2d(3), nn.ReLU()
            self.flatten, self.classifier = nn.Flatten(), nn.Linear(3 * 4 * 4, 2)

        def forward(self, x):
            x = self.pool(self.act1(self.bn1(self.conv1(x))))
            return self.classifier(self.flatten(self.act2(self.bn2(self.conv2(x)))))
    torch.manual_seed(0)
    return Net().eval()


def test_unit_groups_find_producers_norms_and_consumers():
    groups = {g.activation: g for g in unit_groups(bn_convnet())}
    g1, g2 = groups["act1"], groups["act2"]
    assert (g1.size, g1.producers, g1.norms, g1.prunable) == (4, ("conv1",), ("bn1",), True)
    assert g1.consumers == (("conv2", 1),)
    assert (g2.size, g2.producers, g2.norms, g2.consumers) == (3, ("conv2",), ("bn2",), (("classifier", 16),))
    lenet = {g.activation: g for g in unit_groups(get_model("lenet5", (1, 28, 28), 10))}
    assert lenet["act2"].consumers == (("fc1", 25),) and lenet["act4"].consumers == (("classifier", 1),)


def test_residual_units_are_prunable_only_without_an_identity_path():
    groups = {g.activation: g for g in unit_groups(get_model("resnet18", (3, 32, 32), 10))}
    assert groups["act1"].prunable and groups["stages.0.0.act1"].prunable
    assert not groups["stages.0.0.act2"].prunable                      # identity shortcut
    proj = groups["stages.1.0.act2"]                                    # 1×1 conv + BN projection
    assert proj.prunable and proj.producers == ("stages.1.0.conv2", "stages.1.0.shortcut.0")
    assert proj.norms == ("stages.1.0.bn2", "stages.1.0.shortcut.1")


def test_an_activation_after_the_classifier_never_forms_prunable_units():
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2), nn.ReLU())
    assert [g.prunable for g in unit_groups(net)] == [True, False]


def test_unit_keep_masks_cut_incoming_rows_bn_and_outgoing_columns():
    net = bn_convnet()
    groups = unit_groups(net)
    keep = unit_keep_masks(net, {"act2": torch.tensor([False, True, False])}, groups)
    assert set(keep) == {"conv2.weight", "bn2.weight", "bn2.bias", "classifier.weight"}
    assert keep["conv2.weight"].sum(dim=(1, 2, 3)).tolist() == [36, 0, 36]
    assert keep["bn2.weight"].tolist() == [True, False, True]
    cols = keep["classifier.weight"].all(dim=0)
    assert cols.tolist() == [True] * 16 + [False] * 16 + [True] * 16


def test_macs_drop_by_the_pruned_units_incoming_and_outgoing_weights():
    net, x = bn_convnet(), torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # positive inputs, weights and shifts: every channel and feature alive
        for p in (net.conv1.weight, net.conv2.weight):
            p.abs_()
        net.bn1.bias.fill_(5.0)

    def macs():
        """(dense, sparse: non-zero weights, live: non-zero weights reading an alive input)"""
        probe = metrics.LayerProbe(net)
        net(x)
        probe.remove()
        return (*metrics.macs(net, probe), metrics.live_macs(net, probe))
    dense, sparse, live = macs()
    assert sparse == live == dense
    # zeroing only the conv rows leaves β = 5: the "dead" channel still outputs relu(5) everywhere
    with torch.no_grad():
        net.conv1.weight[1] = 0
    assert macs()[1:] == (dense - 64 * 9, dense - 64 * 9)  # only its own 9 weights at 64 positions
    # zeroing the whole unit (γ, β too): its output is 0, so conv2's 3×3×3 reads of it are not live;
    # their weights are still there, so the weight count keeps them
    zero_units(net, _group(net, "act1"), torch.tensor([1]))
    assert macs()[1:] == (dense - 64 * 9, dense - 64 * 9 - 16 * 27)
    # pruning the unit masks its outgoing weights as well: both counts drop by them
    keep = unit_keep_masks(net, {"act1": torch.tensor([False, True, False, False])}, unit_groups(net))
    with torch.no_grad():
        net.conv2.weight.mul_(keep["conv2.weight"])
    assert macs()[1:] == (dense - 64 * 9 - 16 * 27, dense - 64 * 9 - 16 * 27)
    assert metrics.neuron_sparsity(net) == pytest.approx(1 / 7)


def _group(net, activation):
    return next(g for g in unit_groups(net) if g.activation == activation)


# ---------------------------------------------------------------------------------------- pressure

def test_penalty_gradient_is_the_gradient_of_lambda_times_the_regulariser():
    for net in (bn_convnet(), negative_bias_mlp(nn.ReLU())):
        pressure = DeathPressure(net, unit_groups(net), lambda_peak=0.3, noise_peak=0.0, span=10, seed=0)
        lam = one_cycle(4, 10, 0.3)
        for p in net.parameters():
            p.grad = torch.zeros_like(p)
        pressure.add_penalty_grad(step=5)
        got = {n: p.grad.clone() for n, p in net.named_parameters()}
        net.zero_grad()
        if hasattr(net, "bn1"):
            reg = net.bn1.weight.abs().sum() + net.bn2.weight.abs().sum()
        else:
            reg = net[0].weight.norm(dim=1).sum()
        (lam * reg).backward()
        for n, p in net.named_parameters():
            expected = p.grad if p.grad is not None else torch.zeros_like(p)
            assert torch.allclose(got[n], expected, atol=1e-7), n


def test_noise_hits_only_entries_with_a_gradient_from_its_own_generator():
    net = negative_bias_mlp(nn.ReLU())
    pressure = DeathPressure(net, unit_groups(net), 0.0, noise_peak=1e-2, span=10, seed=3)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    net[0].weight.grad[0, 0] = 1.0
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    rng = torch.get_rng_state()
    pressure.add_noise(step=4)
    assert torch.equal(rng, torch.get_rng_state())
    changed = {n: (p != before[n]).nonzero().tolist() for n, p in net.named_parameters()}
    assert changed == {"0.weight": [[0, 0]], "0.bias": [], "2.weight": [], "2.bias": []}
