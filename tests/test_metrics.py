"""Every metric on hand-built networks with known zero weights and known dead units."""
import pytest
import torch
from torch import nn

from benchmark.engine import metrics
from benchmark.data.containers import Split
from methods.activations import ActivationMonitor


def hand_mlp() -> nn.Module:
    """Flatten → Linear(2,3) → ReLU → Linear(3,2) with weights chosen by hand.

    Unit 1 has all-zero incoming weights (structurally dead); unit 2 has bias −10 and never fires
    on non-negative inputs (activation-dead); unit 0 = relu(x0).
    """
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0], [-1.0, -1.0]]))
        model[1].bias.copy_(torch.tensor([0.0, 0.0, -10.0]))
        model[3].weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [0.0, 5.0, 6.0]]))
        model[3].bias.copy_(torch.tensor([0.5, 0.0]))
    return model


X = torch.tensor([[1.0, 2.0], [0.5, 0.0], [0.0, 1.0]]).view(3, 1, 1, 2)
Y = torch.tensor([0, 1, 0])  # logits' argmax is class 0 for all three → 2 of 3 correct


def test_weight_and_parameter_sparsity():
    model = hand_mlp()
    sparsity, layers = metrics.weight_sparsity(model)
    assert sparsity == pytest.approx(4 / 12)
    assert layers == {"1.weight": pytest.approx(0.5), "3.weight": pytest.approx(1 / 6)}
    counts = metrics.parameter_counts(model)
    assert counts == {"params": 17, "params_nonzero": 10, "sparsity_all": pytest.approx(7 / 17)}


def test_neuron_sparsity_counts_hidden_units_with_all_zero_incoming_weights():
    model = hand_mlp()
    assert metrics.neuron_sparsity(model) == pytest.approx(1 / 3)  # the classifier's units don't count
    dead = metrics.structurally_dead_units(model)
    assert list(dead) == ["1"] and dead["1"].tolist() == [False, True, False]


def test_top1_sums_correct_over_examples_with_a_partial_last_batch():
    # batch 2 over 3 examples: per-batch averaging would give (1/2 + 1)/2 = 0.75
    assert metrics.evaluate(hand_mlp(), Split(X, Y), batch_size=2) == pytest.approx(2 / 3)


def test_dynamic_and_static_dead_rates():
    model = hand_mlp()
    monitor = ActivationMonitor(model)
    model(X)  # counters off: nothing recorded
    assert monitor.zero_rate() != monitor.zero_rate()  # NaN
    monitor.count_zeros = True
    model.train()
    model(X)
    # post-ReLU: unit0 = [1, .5, 0], unit1 = [0, 0, 0], unit2 = [0, 0, 0] → 7 zeros of 9
    assert monitor.zero_rate() == pytest.approx(7 / 9)
    model(X[:1])  # one more example: unit0 = 1, others 0 → 9 zeros of 12
    assert monitor.zero_rate() == pytest.approx(9 / 12)
    monitor.reset_zeros()
    monitor.count_zeros = False
    monitor.track_units = True
    model.eval()
    model(X[:2])
    model(X[2:])
    assert monitor.dead_units()["2"].tolist() == [False, True, True]
    assert monitor.dead_unit_rate() == pytest.approx(2 / 3)
    monitor.remove()
    assert not model[2]._forward_hooks


def test_macs_dense_and_sparse_with_dead_inputs():
    model = hand_mlp()
    probe = metrics.LayerProbe(model)
    model(X)
    probe.remove()
    dense, sparse = metrics.macs(model, probe)
    assert dense == 2 * 3 + 3 * 2
    assert sparse == 3 + 5  # every non-zero weight: 3 in layer 1, 5 in layer 3
    # live: layer 1: 3 non-zero weights, both inputs alive; layer 3: only unit 0 is alive and
    # W2[:, 0] = [1, 0] has one non-zero weight
    assert metrics.live_macs(model, probe) == 3 + 1


def test_conv_units_are_channels_pooled_over_space():
    conv = nn.Conv2d(1, 2, kernel_size=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 0.0]).view(2, 1, 1, 1))
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    x = -torch.ones(4, 1, 2, 2)
    x[3, 0, 1, 0] = 0.5  # a single positive pixel in a single example keeps channel 0 alive
    monitor = ActivationMonitor(model)
    monitor.track_units = True
    probe = metrics.LayerProbe(model)
    model.eval()
    model(x)
    assert monitor.dead_units()["1"].tolist() == [False, True]
    assert metrics.neuron_sparsity(model) == pytest.approx(1 / 2)
    dense, sparse = metrics.macs(model, probe)
    # conv: 4 positions × 2 weights; linear: 8×2, but only feature (ch0, pos (1,0)) = index 2 is alive
    assert dense == 4 * 2 + 8 * 2
    assert sparse == 4 * 1 + int((model[3].weight != 0).sum())
    assert metrics.live_macs(model, probe) == 4 * 1 + int((model[3].weight[:, 2] != 0).sum())


def test_nonzero_count_is_exact_across_dtypes_and_sizes():
    from methods.activations import nonzero_count
    gen = torch.Generator().manual_seed(0)
    x = torch.relu(torch.randn(3, 5, 7, 7, generator=gen))
    assert nonzero_count(x).item() == torch.count_nonzero(x).item()
    assert nonzero_count(x.to(torch.bfloat16)).item() == torch.count_nonzero(x).item()
    y = torch.tensor([0.0, -0.0, -2.0, 1e-30, 3.0])  # negative and tiny values count as non-zero
    assert nonzero_count(y).item() == 3


def test_conv_macs_with_stride_and_padding_count_output_positions():
    # 5×5 input, 3×3 kernel, stride 2, padding 1 → 3×3 output; with stride 1 / no padding it would
    # be 3×3 too, so use 6×6: stride 2 + padding 1 → 3×3, stride 1 + no padding → 4×4.
    conv = nn.Conv2d(2, 3, kernel_size=3, stride=2, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.weight[0].zero_()           # output channel 0 pruned entirely
        conv.weight[1, :, 0, 0] = 0.0    # 2 more zeros
    model = nn.Sequential(conv, nn.ReLU())
    x = torch.ones(2, 2, 6, 6)
    x[:, 1] = 0.0                        # input channel 1 is never alive
    probe = metrics.LayerProbe(model)
    model(x)
    probe.remove()
    dense, sparse = metrics.macs(model, probe)
    positions = 3 * 3
    assert probe.positions["0"] == positions
    assert dense == positions * 3 * 2 * 3 * 3
    # channel 1 of the input is dead: of the non-zero weights only those reading input channel 0 count
    alive_nonzero = int((conv.weight[:, 0] != 0).sum())
    assert alive_nonzero == 2 * 9 - 1
    assert metrics.live_macs(model, probe) == positions * alive_nonzero
    assert sparse == positions * int((conv.weight != 0).sum())
