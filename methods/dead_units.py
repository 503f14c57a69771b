"""Bookkeeping of the dead-unit family (``dnr``, ``demp``): checks, streaks and pruned units.

A :class:`DeadUnitTracker` holds, per prunable unit group (:mod:`methods.units`), which units are
pruned for good and for how many consecutive checks each live unit has been found dead. A check
is one eval-mode pass over the method's probe (:func:`methods.activations.probe_dead_units`);
pruned units are skipped. Pruning installs keep-masks on the method: the weight slices through
``set_masks`` (so they count in the weight sparsity, and a prune-event modifier sees them as
pruned) and biases and BatchNorm γ/β through ``set_param_masks``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from methods.activations import probe_dead_units
from methods.units import UnitGroup, unit_groups, unit_keep_masks

if TYPE_CHECKING:
    from methods.base import PruningMethod

#: Automatic check intervals allow at most this many probe passes per epoch (monitoring cost).
CHECKS_PER_EPOCH = 3


class DeadUnitTracker:
    """Pruned units and dead streaks of one model's prunable unit groups."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.all_groups: list[UnitGroup] = unit_groups(model)
        self.groups = [g for g in self.all_groups if g.prunable]
        dev = next(model.parameters()).device
        self.pruned = {g.activation: torch.zeros(g.size, dtype=torch.bool, device=dev) for g in self.groups}
        self.streak = {g.activation: torch.zeros(g.size, dtype=torch.long, device=dev) for g in self.groups}

    def check(self, probe: Tensor, eps: float = 0.0) -> dict[str, Tensor]:
        """Units dead on ``probe`` now, pruned units excluded; streaks updated (a live unit's resets)."""
        found = probe_dead_units(self.model, probe, eps=eps)
        dead = {}
        for g in self.groups:
            if g.activation not in found:
                continue  # an activation the forward pass never reached
            d = found[g.activation] & ~self.pruned[g.activation]
            streak = self.streak[g.activation]
            streak.mul_(d).add_(d.long())
            dead[g.activation] = d
        return dead

    def prune(self, method: PruningMethod, units: dict[str, Tensor]) -> int:
        """Mask ``units`` (activation name → bool) for good on ``method``; returns how many were new."""
        new = 0
        for name, u in units.items():
            fresh = u & ~self.pruned[name]
            new += int(fresh.sum())
            self.pruned[name] |= fresh
            self.streak[name].masked_fill_(fresh, 0)
        if new:
            install_keep_masks(method, unit_keep_masks(self.model, self.pruned, self.groups))
        return new

    def n_pruned(self) -> int:
        return sum(int(p.sum()) for p in self.pruned.values())

    def state_dict(self) -> dict[str, Any]:
        return {"pruned": {k: v.cpu() for k, v in self.pruned.items()},
                "streak": {k: v.cpu() for k, v in self.streak.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("pruned", "streak"):
            for name, value in state[key].items():
                getattr(self, key)[name].copy_(value)


def install_keep_masks(method: PruningMethod, keep: dict[str, Tensor]) -> None:
    """AND ``keep`` (parameter name → bool) into ``method``'s weight masks and parameter masks."""
    weights, others = {}, {}
    for name, k in keep.items():
        target, current = (weights, method.masks) if name in method.weights else (others, method.param_masks)
        target[name] = k if name not in current else current[name].bool() & k
    if others:
        method.set_param_masks({**method.param_masks, **others})
    if weights:
        method.set_masks({**method.masks, **weights})
