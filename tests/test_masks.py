"""Exact checks of mask selection, budgets and mask application (methods.masks, methods.budgets)."""
import pytest
import torch
import torch.nn.utils.prune as torch_prune
from torch import nn

from methods.budgets import erk_score, layer_densities
from methods.masks import (apply_masks, magnitude_masks, masks_from_scores, prunable_weights,
                           prune_lowest)


def test_prune_lowest_removes_exactly_k_with_index_tie_break():
    keep = prune_lowest(torch.tensor([3.0, 1.0, 2.0, 1.0, 5.0]), 2)
    assert keep.tolist() == [True, False, True, False, True]
    # four-way tie at the threshold: the lower indices go first
    keep = prune_lowest(torch.tensor([1.0, 1.0, 0.5, 1.0, 1.0]), 3)
    assert keep.tolist() == [False, False, False, True, True]
    assert prune_lowest(torch.tensor([1.0, 2.0]), 0).tolist() == [True, True]
    assert prune_lowest(torch.tensor([1.0, 2.0]), 2).tolist() == [False, False]


def test_global_magnitude_masks_by_hand():
    weights = {"a": torch.tensor([[0.1, -0.5], [0.3, 0.05]]), "b": torch.tensor([0.2, -0.01, 0.4])}
    masks = magnitude_masks(weights, 3 / 7)  # round(3/7 * 7) = 3 smallest |w|: 0.01, 0.05, 0.1
    assert masks["a"].tolist() == [[False, True], [True, False]]
    assert masks["b"].tolist() == [True, False, True]


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9, 0.99])
def test_global_scope_agrees_with_torch_global_unstructured(sparsity):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    ours = magnitude_masks(model, sparsity)
    torch_prune.global_unstructured([(model[0], "weight"), (model[3], "weight")],
                                    pruning_method=torch_prune.L1Unstructured, amount=sparsity)
    assert torch.equal(ours["0.weight"], model[0].weight_mask.bool())
    assert torch.equal(ours["3.weight"], model[3].weight_mask.bool())


def test_layer_scope_uniform_prunes_each_tensor_by_the_same_fraction():
    scores = {"a": torch.arange(10.0), "b": torch.arange(30.0).flip(0)}
    masks = masks_from_scores(scores, 0.5, scope="layer")
    assert int((~masks["a"]).sum()) == 5 and int((~masks["b"]).sum()) == 15
    assert masks["a"].tolist() == [False] * 5 + [True] * 5  # the lowest scores go


def test_erk_densities_by_hand():
    shapes = {"big": (10, 20), "small": (5, 4)}
    assert erk_score((10, 20)) == pytest.approx(30 / 200)
    # 100 of 220 kept: eps = 100 / (0.15·200 + 0.45·20) = 2.56 → small would be 1.15 > 1 → dense;
    # then big keeps 80 of 200.
    dens = layer_densities(shapes, kept=100, budget="erk")
    assert dens["small"] == 1.0
    assert dens["big"] == pytest.approx(0.4)
    uniform = layer_densities(shapes, kept=110, budget="uniform")
    assert uniform == {"big": 0.5, "small": 0.5}
    with pytest.raises(ValueError, match="unknown budget"):
        layer_densities(shapes, kept=10, budget="nope")


def test_erk_layer_masks_meet_the_kept_total():
    scores = {"big": torch.rand(10, 20), "small": torch.rand(5, 4)}
    masks = masks_from_scores(scores, 120 / 220, scope="layer", budget="erk")
    assert int(masks["small"].sum()) == 20 and int(masks["big"].sum()) == 80


def test_excluded_layers_make_the_others_compensate_and_unreachable_targets_fail():
    model = nn.Sequential(nn.Linear(4, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 2))
    weights = prunable_weights(model, prune_first=False, prune_classifier=False)
    assert list(weights) == ["2.weight"]
    total = 40 + 100 + 20
    masks = masks_from_scores({n: w.abs() for n, w in weights.items()}, 0.5, total=total)
    assert int((~masks["2.weight"]).sum()) == 80  # 80 of 160 over all prunable weights
    with pytest.raises(ValueError, match="unreachable"):
        masks_from_scores({n: w.abs() for n, w in weights.items()}, 0.7, total=total)


def test_already_pruned_positions_are_pruned_first():
    w = {"a": torch.tensor([0.0, 5.0, 0.1, 3.0])}
    current = {"a": torch.tensor([True, False, True, True])}  # 5.0 is outside the current mask
    masks = magnitude_masks(w, 0.5, current=current)
    assert masks["a"].tolist() == [False, False, True, True]  # the masked 5.0 goes before 0.1


def test_apply_masks_zeroes_weights_and_momentum_so_pruned_weights_stay_zero():
    layer = nn.Linear(3, 2, bias=False)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    mask = {"w": torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])}
    weights = {"w": layer.weight}
    for _ in range(3):
        opt.zero_grad()
        layer(torch.randn(8, 3)).pow(2).sum().backward()
        opt.step()
        apply_masks(weights, mask, opt)
        assert torch.all(layer.weight[mask["w"] == 0] == 0)
        assert torch.all(opt.state[layer.weight]["momentum_buffer"][mask["w"] == 0] == 0)
    # a step with zero gradient must not move pruned weights: momentum was masked too
    opt.zero_grad()
    layer.weight.grad = torch.zeros_like(layer.weight)
    opt.step()
    assert torch.all(layer.weight[mask["w"] == 0] == 0)


def test_bad_sparsity_and_scope_are_rejected():
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_masks({"a": torch.ones(4)}, 1.0)
    with pytest.raises(ValueError, match="scope"):
        magnitude_masks({"a": torch.ones(4)}, 0.5, scope="channel")
