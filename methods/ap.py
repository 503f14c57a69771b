"""AP (Activate-while-Pruning): a modifier that changes *which* weights a base method removes.

Liu, Ghosh, Tan & Motani, *AP: Selective Activation for De-sparsifying Pruned Neural Networks*,
arXiv 2212.06145 (2022); TMLR 2023 as *Activate-while-Pruning*. Official code:
github.com/Martin1937/Activate-While-Pruning (``resnet_20.py``). Spec: ``shared/specs/ap.md``.

AP is not a method of its own. Written ``<base>+ap``, it rides on every method with discrete prune
events (``has_prune_events``), at the single place where such a method removes weights: the
``select_masks`` call inside :meth:`MaskedMethod.prune_to <methods.base.MaskedMethod.prune_to>`.
At an event where the base removes k weights (k = weights alive before the event and pruned by
the base's masks after it):

1. the base removes k − k_ap of them by its own criterion (the lowest of its :meth:`scores` among
   its k removals; for a global score ranking that is exactly the base's own selection at the
   lower count), with k_ap = round(``ap_share`` · k);
2. AP removes k_ap of the surviving weights that are **negative**, those with the smallest
   movement |θ − θ_ref|, where θ_ref is the weights right after the previous prune event (at the
   first event, the weights at attach time; for ``imp``, where every event is followed by a
   rewind, the rewind point of the round — the official code's reference);
3. should fewer than k_ap negative survivors exist, AP removes all of them and the base's
   criterion removes the rest, so exactly k weights go at every event.

Scope: with ``scope=global`` the k removals are one pool. With ``scope=layer`` each tensor l keeps
the base's budget k_l exactly and AP takes round(``ap_share`` · k_l) of it among that tensor's
negative survivors, so the event's AP count is Σ_l round(ap_share · k_l) (within one weight per
tensor of round(ap_share · k)). Positions a base revives (regrowth) are never touched.
Ties (equal movement, equal score) go to the lower flat index, as everywhere in ``masks.py``. At
an event before any training step every movement is 0, so AP then removes negative survivors in
index order: AP needs training between the reference and the event to mean anything.

``ap_share`` (default 0.1) is the paper's q/p: the official code prunes p = 20% of the alive
weights per round, 18% by magnitude and q = 2% by AP. ``ap_share=0`` is exactly the base.

θ_ref costs one copy of the prunable weights, on their device, refreshed once per event: the
copy is taken at the first ``after_backward`` after an event (before that step's update), so it
sees whatever the base did right after pruning (IMP's rewind, GraNet's regrowth).

Deviations from the official code (on purpose): AP's count is exactly round(q/p · k). The official
step removes ⌊q · |P|⌋ + 1 negative survivors, not ⌊q · |P|⌋: its ``<=`` against the sorted
movements at 0-based index ⌊q · |P|⌋ takes that entry too. P, its pool of the weights alive before
the event, holds every tensor named ``weight`` (BN's γ included, no bias) and counts a weight tensor
twice when its layer has a bias (in its ResNet-20: BN's γ and the classifier), so such a weight
fills two of those places. BN weights and biases are never in our pools. The official code only
has IMP as a base, so for bases without rounds (``gmp``, ``magnitude``, GraNet) "the start of the
round" is read as the previous prune event (or attach time), the same rule that gives IMP its rewind
point.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch
from torch import Tensor

from methods.base import PruningMethod
from methods.hparams import hp
from methods.masks import prune_lowest

MODIFIER = "ap"
SUFFIX = "+" + MODIFIER
AP_SHARE_HELP = ("AP's share of each prune event's removals (the paper's q/p): removed among the "
                 "negative survivors that moved least since the previous event")


@dataclass(frozen=True)
class APEvent:
    """What one prune event removed (totals over all groups)."""
    removed: int       # k: weights alive before the event and pruned after it
    ap_target: int     # k_ap: round(ap_share · k) (summed per tensor with scope=layer)
    by_ap: int         # removed by the AP rule (< ap_target only when negatives ran out)


def _flat(tensors: Mapping[str, Tensor], names: list[str]) -> Tensor:
    return torch.cat([tensors[n].detach().reshape(-1) for n in names])


def _lowest(values: Tensor, candidates: Tensor, k: int) -> Tensor:
    """Bool mask of the ``k`` lowest ``values`` among ``candidates`` (lower index first on ties)."""
    inf = torch.full_like(values, float("inf"))
    return ~prune_lowest(torch.where(candidates, values, inf), k)


def _ap_group(kept: Tensor, proposed: Tensor, scores: Tensor, weights: Tensor, reference: Tensor,
              share: float) -> tuple[Tensor, APEvent]:
    """AP on one pool of flat tensors; returns the new keep-mask and the event's counts."""
    removed = kept & ~proposed                       # the base's k removals at this event
    k = int(removed.sum())
    k_ap = round(share * k)
    if k_ap == 0:
        return proposed, APEvent(k, 0, 0)
    by_base = _lowest(scores, removed, k - k_ap)     # its own criterion, k − k_ap of them
    alive = kept & ~by_base
    negative = alive & (weights < 0)
    take = min(k_ap, int(negative.sum()))
    by_ap = _lowest((weights - reference).abs().float(), negative, take)
    rest = k_ap - take                               # too few negatives: the base removes the rest
    if rest:
        by_base |= _lowest(scores, removed & ~by_base & ~by_ap, rest)
    keep = (proposed | kept) & ~by_base & ~by_ap
    return keep, APEvent(k, k_ap, take)


def ap_keep_masks(kept: Mapping[str, Tensor], proposed: Mapping[str, Tensor],
                  scores: Mapping[str, Tensor], weights: Mapping[str, Tensor],
                  reference: Mapping[str, Tensor], share: float,
                  scope: str = "global") -> tuple[dict[str, Tensor], APEvent]:
    """Keep-masks of one AP prune event (the algorithm of the module docstring).

    Args:
        kept: keep-masks before the event (bool or 0/1), keyed like ``proposed``.
        proposed: the base method's keep-masks at this event.
        scores: the base's importance per weight (higher = keep), ranking its own removals.
        weights: the current weights θ; ``reference``: θ_ref (same keys and shapes).
        share: ``ap_share`` in [0, 1].
        scope: ``global`` (one pool) or ``layer`` (one pool per tensor).

    Returns:
        bool keep-masks with exactly as many removals per pool as ``proposed``, and the counts.
    """
    names = list(proposed)
    groups = [names] if scope == "global" else [[n] for n in names]
    masks: dict[str, Tensor] = {}
    totals = [0, 0, 0]
    for group in groups:
        keep, event = _ap_group(_flat(kept, group).bool(), _flat(proposed, group).bool(),
                                _flat(scores, group).float(), _flat(weights, group),
                                _flat(reference, group), share)
        start = 0
        for n in group:
            size = proposed[n].numel()
            masks[n] = keep[start:start + size].view(proposed[n].shape)
            start += size
        totals = [t + v for t, v in zip(totals, (event.removed, event.ap_target, event.by_ap))]
    return masks, APEvent(*totals)


class ActivateWhilePruning:
    """The AP mixin: placed before a :class:`~methods.base.MaskedMethod` subclass in the MRO.

    Overrides ``attach``, ``after_backward``, ``prune_to``, ``select_masks`` and the checkpoint
    state; everything else (schedule, scores, budgets, rewinding, regrowth) is the base's.
    """

    modifier: ClassVar[str] = MODIFIER

    def attach(self, model, optimizer, steps_per_epoch: int, total_epochs: int) -> None:
        self.ap_reference: dict[str, Tensor] = {}
        self.ap_events: list[APEvent] = []
        self._ap_pending = self.hp.ap_share > 0   # θ_ref is due: no optimizer step since then
        self._ap_in_event = self._ap_used = False
        super().attach(model, optimizer, steps_per_epoch, total_epochs)  # may hold an event

    def after_backward(self, step: int) -> None:
        if self._ap_pending:  # the first step after an event (or attach): weights not yet updated
            self._ap_take_reference()
        super().after_backward(step)

    def prune_to(self, sparsity: float) -> None:
        self._ap_in_event, self._ap_used = True, False
        try:
            super().prune_to(sparsity)
        finally:
            self._ap_in_event = False
        if self.hp.ap_share > 0:
            if not self._ap_used:
                raise RuntimeError(f"{self.name}: the base's prune_to did not call select_masks, "
                                   "so AP cannot choose its removals")
            self._ap_pending = True

    def select_masks(self, sparsity: float) -> dict[str, Tensor]:
        proposed = super().select_masks(sparsity)
        if not self._ap_in_event or self.hp.ap_share == 0:
            return proposed
        self._ap_used = True
        if self._ap_pending:  # an event with no step since the last reference point
            self._ap_take_reference()
        kept = self.masks or {n: torch.ones_like(w, dtype=torch.bool) for n, w in self.weights.items()}
        masks, event = ap_keep_masks(kept, proposed, self.scores(), self.weights, self.ap_reference,
                                     self.hp.ap_share, getattr(self.hp, "scope", "global"))
        self.ap_events.append(event)
        return masks

    @torch.no_grad()
    def _ap_take_reference(self) -> None:
        if self.ap_reference:
            torch._foreach_copy_(list(self.ap_reference.values()),
                                 [self.weights[n] for n in self.ap_reference])
        else:
            self.ap_reference = {n: w.detach().clone() for n, w in self.weights.items()}
        self._ap_pending = False

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["ap_reference"] = {n: t.cpu() for n, t in self.ap_reference.items()}
        state["ap_pending"] = self._ap_pending
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.ap_reference = {n: t.to(self.weights[n].device) for n, t in state["ap_reference"].items()}
        self._ap_pending = state["ap_pending"]


def can_compose(base: type[PruningMethod]) -> bool:
    """Whether AP can ride on ``base``: it removes weights at discrete prune events."""
    return bool(base.has_prune_events) and not issubclass(base, ActivateWhilePruning)


@functools.lru_cache(maxsize=None)
def compose(base: type[PruningMethod]) -> type[PruningMethod]:
    """The class ``<base>+ap``: the AP mixin over ``base``, its Hparams extended with ``ap_share``."""
    if not can_compose(base):
        raise ValueError(f"AP cannot ride on {base.name!r}: it has no prune events")
    hparams = dataclasses.make_dataclass(
        f"{base.Hparams.__name__}AP", [("ap_share", float, hp(0.1, AP_SHARE_HELP, range=(0.0, 1.0)))],
        bases=(base.Hparams,), frozen=True)
    hparams.__module__ = __name__
    return type(f"{base.__name__}AP", (ActivateWhilePruning, base), {
        "name": base.name + SUFFIX,
        "description": f"{base.name} with AP removing ap_share of each event's removals "
                       "(Liu et al. 2023)",
        "Hparams": hparams,
        "__module__": __name__,
        "__doc__": f"``{base.name}`` with AP (Activate-while-Pruning); see :mod:`methods.ap`.",
    })
