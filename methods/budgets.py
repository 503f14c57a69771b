"""Per-layer density budgets: how a number of kept weights is split across tensors.

``uniform`` gives every tensor the same density. ``erk`` is the Erdős–Rényi-Kernel rule of
Evci et al., *Rigging the Lottery* (ICML 2020), as used by GraNet (Liu et al., NeurIPS 2021):
a tensor's density is proportional to ``sum(shape) / prod(shape)`` (kernel dims included), the
scale ε is solved so the kept total is met, and any tensor whose density would exceed 1 is made
dense — one at a time, the largest first — and ε re-solved until none exceeds 1.
"""
from __future__ import annotations

import math
from typing import Mapping

BUDGETS = ("uniform", "erk")


def erk_score(shape: tuple[int, ...]) -> float:
    """The ERK raw density of a tensor: (Σ dims) / (Π dims)."""
    return sum(shape) / math.prod(shape)


def layer_densities(shapes: Mapping[str, tuple[int, ...]], kept: int,
                    budget: str = "uniform") -> dict[str, float]:
    """Density per tensor so that Σ density·numel = ``kept`` (before per-tensor rounding)."""
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; choose from: {', '.join(BUDGETS)}")
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    total = sum(sizes.values())
    if not 0 <= kept <= total:
        raise ValueError(f"cannot keep {kept} of {total} weights")
    if budget == "uniform":
        return {name: kept / total for name in shapes}
    raw = {name: erk_score(shape) for name, shape in shapes.items()}
    dense: set[str] = set()
    while True:
        sparse_names = [n for n in shapes if n not in dense]
        remaining = kept - sum(sizes[n] for n in dense)
        weight = sum(raw[n] * sizes[n] for n in sparse_names)
        if not sparse_names or weight == 0:
            break
        eps = remaining / weight
        largest = max(sparse_names, key=lambda n: raw[n])
        if eps * raw[largest] <= 1.0:
            break
        dense.add(largest)
    return {n: 1.0 if n in dense else eps * raw[n] for n in shapes}


def layer_counts(shapes: Mapping[str, tuple[int, ...]], kept: int,
                 budget: str = "uniform") -> dict[str, int]:
    """Whole numbers of kept weights per tensor, summing to exactly ``kept``.

    The :func:`layer_densities` budget times each tensor's size, rounded down, then the weights
    still missing go one each to the tensors with the largest remainders (ties: module order),
    never beyond a tensor's size. Every count is within one of density × size.
    """
    densities = layer_densities(shapes, kept, budget)
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    exact = {name: min(densities[name] * sizes[name], sizes[name]) for name in shapes}
    counts = {name: math.floor(value) for name, value in exact.items()}
    missing = kept - sum(counts.values())  # < number of tensors; < 0 only by float round-off
    if missing >= 0:
        order = sorted((n for n in shapes if counts[n] < sizes[n]), key=lambda n: counts[n] - exact[n])
    else:
        order = sorted((n for n in shapes if counts[n] > 0), key=lambda n: exact[n] - counts[n])
    for name in order[:abs(missing)]:
        counts[name] += 1 if missing > 0 else -1
    return counts
