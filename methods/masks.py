"""Masks: which tensors are prunable, exact top-k selection, and applying masks.

Prunable tensors are the weights of ``nn.Conv2d`` and ``nn.Linear`` modules, in module order.
Biases and normalisation parameters are never masked. The *first layer* is the first prunable
module and the *classifier* the last ``nn.Linear`` (the models registry guarantees this order).

Target sparsity is always over **all** prunable weights (the ``sparsity`` metric's denominator).
When a method keeps the first layer or the classifier dense, the remaining tensors are pruned
harder so the whole still meets the target (as ShrinkBench's ``fraction_to_keep`` does); a target
that cannot be met that way is an error, never a silent miss.

Selection is exact: pruning *k* weights removes exactly *k*. Ties in the score are broken
deterministically: among equal scores the weight with the lower flat index (tensors concatenated
in module order, each flattened row-major) is pruned first.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import torch
from torch import Tensor, nn

from methods.budgets import layer_counts, layer_densities

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
SCOPES = ("global", "layer")


def prunable_modules(model: nn.Module) -> dict[str, nn.Module]:
    """All ``Conv2d``/``Linear`` modules of ``model`` by qualified name, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)}


def classifier_name(model: nn.Module) -> str | None:
    """Qualified name of the classifier: the last ``nn.Linear`` in module order."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def prunable_weights(model: nn.Module, prune_first: bool = True,
                     prune_classifier: bool = True) -> dict[str, nn.Parameter]:
    """Weights a method may mask, keyed ``"<module>.weight"``, in module order.

    ``prune_first=False`` leaves the first prunable layer dense; ``prune_classifier=False`` the
    last ``nn.Linear``. Every other Conv2d/Linear weight is included.
    """
    modules = prunable_modules(model)
    excluded = set()
    if not prune_first and modules:
        excluded.add(next(iter(modules)))
    if not prune_classifier:
        cls = classifier_name(model)
        if cls is not None:
            excluded.add(cls)
    return {f"{name}.weight": m.weight for name, m in modules.items() if name not in excluded}


def all_prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every Conv2d/Linear weight: the denominator of the ``sparsity`` metric and of targets."""
    return prunable_weights(model, prune_first=True, prune_classifier=True)


def prune_lowest(scores: Tensor, k: int) -> Tensor:
    """Boolean keep-mask of a 1-D ``scores`` with exactly ``k`` lowest entries removed.

    Ties at the threshold are broken by position: the lower index is pruned first. O(n): one
    ``kthvalue`` plus comparisons, no full sort.
    """
    n = scores.numel()
    if k <= 0:
        return torch.ones(n, dtype=torch.bool, device=scores.device)
    if k >= n:
        return torch.zeros(n, dtype=torch.bool, device=scores.device)
    threshold = scores.kthvalue(k).values
    keep = scores > threshold
    ties = (scores == threshold).nonzero().flatten()
    n_below = int((scores < threshold).sum())
    keep[ties[k - n_below:]] = True  # of the tied entries, the first (k - n_below) are pruned
    return keep


def _split_like(flat_keep: Tensor, tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    out, start = {}, 0
    for name, t in tensors.items():
        out[name] = flat_keep[start:start + t.numel()].view_as(t)
        start += t.numel()
    return out


def target_prune_count(sparsity: float, total: int, available: int) -> int:
    """Weights to remove from ``available`` so that ``sparsity`` of ``total`` is zero."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    k = round(sparsity * total)
    if k > available:
        raise ValueError(
            f"sparsity {sparsity:.4g} is unreachable: it needs {k} zero weights but only "
            f"{available} of {total} prunable weights may be pruned (dense layers excluded)")
    return k


def check_reachable(model: nn.Module, sparsity: float, prune_first: bool = True,
                    prune_classifier: bool = True) -> None:
    """``ValueError`` when ``sparsity`` (over all prunable weights) cannot be met by the allowed layers."""
    allowed = prunable_weights(model, prune_first, prune_classifier)
    target_prune_count(sparsity, sum(w.numel() for w in all_prunable_weights(model).values()),
                       sum(w.numel() for w in allowed.values()))


def masks_from_scores(scores: Mapping[str, Tensor], sparsity: float, scope: str = "global",
                      budget: str = "uniform", total: int | None = None) -> dict[str, Tensor]:
    """Keep-masks (bool) that remove the lowest-scoring weights to reach ``sparsity``.

    Args:
        scores: per-tensor importance scores (higher = keep). Use ``-inf``/negative values to force
            positions out (e.g. already-pruned weights).
        sparsity: target fraction of zeros over ``total`` weights.
        scope: ``"global"`` — one threshold across all tensors; ``"layer"`` — a per-tensor budget.
        budget: per-tensor densities for ``scope="layer"``: ``"uniform"`` or ``"erk"``.
        total: the denominator of the target; defaults to the number of scored weights. Larger
            when some prunable tensors are kept dense (they count as dense weights).
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; choose from: {', '.join(SCOPES)}")
    available = sum(s.numel() for s in scores.values())
    total = available if total is None else total
    k = target_prune_count(sparsity, total, available)
    if scope == "global":
        flat = torch.cat([s.detach().reshape(-1).float() for s in scores.values()])
        return _split_like(prune_lowest(flat, k), scores)
    shapes = {name: tuple(s.shape) for name, s in scores.items()}
    densities = layer_densities(shapes, kept=available - k, budget=budget)
    masks = {}
    for name, s in scores.items():
        k_layer = s.numel() - round(densities[name] * s.numel())
        masks[name] = prune_lowest(s.detach().reshape(-1).float(), k_layer).view_as(s)
    return masks


def magnitude_masks(model_or_weights: nn.Module | Mapping[str, Tensor], sparsity: float,
                    scope: str = "global", budget: str = "uniform",
                    current: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Magnitude-pruning masks for a model or a dict of weight tensors (public helper).

    Keeps the top-(1 − sparsity) weights by ``|W|``. With ``scope="global"`` it agrees with
    ``torch.nn.utils.prune.global_unstructured(..., pruning_method=L1Unstructured, amount=sparsity)``
    on the same tensors: the same count ``round(sparsity·N)`` is removed, and the same weights
    whenever no two weights tie at the threshold. Where several weights share the threshold value,
    the choice among them may differ from torch's (whose ``topk`` order is unspecified): here the
    lower flat index is always pruned first, so the result is deterministic.
    Positions already zero in ``current`` masks are pruned first. Returns bool keep-masks keyed
    like the input (``"<module>.weight"`` for a model).
    """
    weights = (all_prunable_weights(model_or_weights) if isinstance(model_or_weights, nn.Module)
               else dict(model_or_weights))
    scores = magnitude_scores(weights, current)
    return masks_from_scores(scores, sparsity, scope=scope, budget=budget)


def magnitude_scores(weights: Mapping[str, Tensor],
                     current: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
    """``|W|`` per tensor, with positions outside ``current`` masks set to −1 (pruned first)."""
    scores = {}
    for name, w in weights.items():
        s = w.detach().abs().float()
        if current is not None and name in current:
            s = torch.where(current[name].bool(), s, torch.full_like(s, -1.0))
        scores[name] = s
    return scores


@torch.no_grad()
def apply_masks(weights: Mapping[str, Tensor], masks: Mapping[str, Tensor],
                optimizer: torch.optim.Optimizer | None = None) -> None:
    """Zero masked weights **and** every same-shaped optimizer state tensor (momentum, Adam moments).

    Masking the optimizer state too is what keeps pruned weights exactly zero: a non-zero
    momentum buffer would otherwise move a pruned weight off zero at the next step.
    """
    apply_mask_lists(*mask_lists(weights, masks), optimizer)


def mask_lists(weights: Mapping[str, Tensor],
               masks: Mapping[str, Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """Parallel lists (weights, masks) of the masked tensors, for the fused per-step ops below."""
    names = [n for n in masks if n in weights]
    return [weights[n] for n in names], [masks[n] for n in names]


@torch.no_grad()
def mask_gradients(params: list[Tensor], mask_list: list[Tensor]) -> None:
    """Multiply each parameter's gradient by its mask in one fused op (parameters without one skipped)."""
    pairs = [(p.grad, m) for p, m in zip(params, mask_list) if p.grad is not None]
    if pairs:
        torch._foreach_mul_([g for g, _ in pairs], [m for _, m in pairs])


@torch.no_grad()
def apply_mask_lists(params: list[Tensor], mask_list: list[Tensor],
                     optimizer: torch.optim.Optimizer | None = None) -> None:
    """:func:`apply_masks` on parallel lists (the per-step hot path: no dict work)."""
    if not params:
        return
    torch._foreach_mul_(params, mask_list)
    if optimizer is None:
        return
    state_tensors, state_masks = [], []
    for p, m in zip(params, mask_list):
        for value in optimizer.state.get(p, {}).values():
            if torch.is_tensor(value) and value.shape == p.shape:
                state_tensors.append(value)
                state_masks.append(m if value.dtype == m.dtype else m.to(value.dtype))
    if state_tensors:
        torch._foreach_mul_(state_tensors, state_masks)


def masks_like(weights: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Masks converted to each weight's dtype and device (multiplicative 0/1 tensors)."""
    return {n: masks[n].to(device=weights[n].device, dtype=weights[n].dtype) for n in masks}


def count_zeros(tensors: Iterable[Tensor]) -> tuple[int, int]:
    """(exact zeros, elements) over ``tensors``."""
    zeros = total = 0
    for t in tensors:
        zeros += int((t == 0).sum())
        total += t.numel()
    return zeros, total


def random_masks(weights: Mapping[str, Tensor], sparsity: float, total: int, budget: str,
                 generator: torch.Generator) -> dict[str, Tensor]:
    """Random keep-masks with exactly ``round(sparsity·total)`` zeros, split by a layer budget.

    Each tensor keeps exactly its :func:`methods.budgets.layer_counts` share (``"uniform"`` or
    ``"erk"``; a tensor the ERK rule makes dense stays dense) at uniformly random positions drawn
    from ``generator`` (on the CPU, so the global RNG is untouched). ``total`` is the denominator
    of the target, as in :func:`masks_from_scores`.
    """
    available = sum(w.numel() for w in weights.values())
    k = target_prune_count(sparsity, total, available)
    counts = layer_counts({name: tuple(w.shape) for name, w in weights.items()}, available - k, budget)
    masks = {}
    for name, w in weights.items():
        keep = torch.zeros(w.numel(), dtype=torch.bool)
        keep[torch.randperm(w.numel(), generator=generator)[:counts[name]]] = True
        masks[name] = keep.view(w.shape).to(w.device)
    return masks


def lowest_indices(scores: Tensor, k: int) -> Tensor:
    """Flat indices (ascending) of the ``k`` lowest entries of 1-D ``scores``: what
    :func:`prune_lowest` removes, with the same tie-breaking (lower index first).

    For ``k`` much smaller than the tensor, the ``k``-th lowest value is first bounded from a
    strided sample, so the exact selection runs on about 2k entries instead of all of them; when
    the bound holds fewer than ``k`` entries it falls back to the whole tensor. The result is the
    same either way.
    """
    n = scores.numel()
    if k <= 0:
        return torch.zeros(0, dtype=torch.long, device=scores.device)
    if 16 * k < n:
        sample = scores[::8]
        rank = min(sample.numel(), 2 * k * sample.numel() // n + 16)
        pool = (scores <= sample.kthvalue(rank).values).nonzero().flatten()
        if pool.numel() >= k:  # the k-th lowest value is within the bound, and so are its ties
            return pool[~prune_lowest(scores[pool], k)]
    return (~prune_lowest(scores, k)).nonzero().flatten()


def drop_and_grow(active: Tensor, drop_scores: Tensor, grow_scores: Tensor, m: int) -> Tensor:
    """One tensor's connection swap: the new boolean keep-mask, with the same number of ones.

    Drops the ``m`` active positions with the lowest ``drop_scores``, then activates the ``m``
    positions with the highest ``grow_scores`` among all inactive ones, the just-dropped included
    (so a dropped position may come straight back). Ties are broken as in :func:`prune_lowest`:
    the lower flat index is dropped first and grown first. Needs ``m`` ≤ the active count.
    """
    keep = active.reshape(-1).clone()
    on = keep.nonzero().flatten()
    keep[on[lowest_indices(drop_scores.reshape(-1)[on].float(), m)]] = False
    grow = torch.where(keep, float("inf"), -grow_scores.reshape(-1).float())
    keep[lowest_indices(grow, m)] = True
    return keep.view(active.shape)
