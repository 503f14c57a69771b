"""The magnitude family: ``dense``, ``random``, ``magnitude`` (one-shot) and ``gmp`` (gradual).

The references every other method is judged against (spec: ``shared/specs/magnitude.md``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from methods.base import MaskedMethod, PruningMethod
from methods.hparams import MaskHparams, hp
from methods.schedules import window_of


class Dense(PruningMethod):
    """No pruning: the accuracy ceiling of a grid."""

    name = "dense"
    description = "no pruning; the accuracy ceiling of the grid"


@dataclass(frozen=True)
class OneShotHparams(MaskHparams):
    prune_at: float = hp(0.5, "fraction of the training steps after which the net is pruned once "
                         "(0 = at initialisation); the rest fine-tunes with the mask fixed",
                         range=(0.0, 1.0))


class Magnitude(MaskedMethod):
    """One-shot magnitude pruning with fine-tuning.

    Han, Pool, Tran & Dally, *Learning both Weights and Connections for Efficient Neural
    Networks*, NeurIPS 2015; global scope as ShrinkBench's ``GlobalMagWeight`` (Blalock et al.,
    *What is the State of Neural Network Pruning?*, MLSys 2020). Trains dense for ``prune_at`` of
    the budget, removes the smallest-|W| weights once to reach the target, fine-tunes the rest.
    Deviation: Han et al. train to convergence and then retrain; here both phases share the grid's
    single epoch budget and LR schedule, so every method gets the same number of steps.
    """

    name = "magnitude"
    description = "one-shot magnitude pruning at prune_at of training, then fine-tuning (Han et al. 2015)"
    Hparams = OneShotHparams
    state_attributes = ("pruned",)

    def attach(self, model, optimizer, steps_per_epoch, total_epochs) -> None:
        super().attach(model, optimizer, steps_per_epoch, total_epochs)
        self.prune_step = round(self.hp.prune_at * self.total_steps)
        self.pruned = False
        if self.prune_step == 0:
            self._prune_once()

    def _prune_once(self) -> None:
        if self.target_sparsity > 0:
            self.prune_to(self.target_sparsity)
        self.pruned = True

    def after_step(self, step: int) -> None:
        if not self.pruned and step >= self.prune_step:
            self._prune_once()
        super().after_step(step)


class Random(Magnitude):
    """Random pruning: a uniformly random mask at the target, when ``magnitude`` would prune.

    The sanity floor of ShrinkBench (Blalock et al., MLSys 2020, ``RandomPruning``). Exactly
    ``round(s·N)`` weights are removed; with ``scope=global`` the positions are uniform over all
    prunable weights. The draw uses its own generator seeded by the run seed, so it does not
    disturb the data order or initialisation shared with the other methods.
    """

    name = "random"
    description = "random mask at the target, at the moment magnitude prunes (sanity floor)"

    def scores(self) -> dict[str, Tensor]:
        gen = torch.Generator().manual_seed(self.seed)
        out = {}
        for name, w in self.weights.items():
            s = torch.rand(w.shape, generator=gen).to(w.device)
            if self.masks:
                s = torch.where(self.masks[name].bool(), s, torch.full_like(s, -1.0))
            out[name] = s
        return out


@dataclass(frozen=True)
class GMPHparams(MaskHparams):
    start_frac: float = hp(0.0, "pruning starts at this fraction of the training steps (t0)",
                           range=(0.0, 1.0))
    end_frac: float = hp(0.5, "the target is reached at this fraction of the training steps (tf)",
                         range=(0.0, 1.0))
    interval: int = hp(0, "steps between prune events Δt; 0 = about 30 events in [t0, tf]",
                       range=(0, None))
    initial_sparsity: float = hp(0.0, "sparsity s_i at the first event", range=(0.0, 0.999))


class GMP(MaskedMethod):
    """Gradual magnitude pruning on the cubic schedule.

    Zhu & Gupta, *To prune, or not to prune: exploring the efficacy of pruning for model
    compression*, ICLR-W 2018 (arXiv 1710.01878). Every Δt steps from t0 to tf the net is pruned
    to s_t = s_f + (s_i − s_f)(1 − (t − t0)/(tf − t0))^3 by magnitude; the last event falls on tf
    exactly (a shorter last step when tf − t0 is not a multiple of Δt) and reaches s_f, and the
    mask stays fixed afterwards. Δt scales with the run length by default (``interval=0``: ~30
    events between t0 and tf), so short benchmark budgets keep the shape of the schedule; an
    explicit Δt longer than the window is an error.
    """

    name = "gmp"
    description = "gradual magnitude pruning, cubic schedule from start_frac to end_frac (Zhu & Gupta 2017)"
    Hparams = GMPHparams

    def check(self, model, steps_per_epoch, total_epochs) -> None:
        super().check(model, steps_per_epoch, total_epochs)
        window_of(self.name, self.hp, steps_per_epoch * total_epochs)

    def attach(self, model, optimizer, steps_per_epoch, total_epochs) -> None:
        super().attach(model, optimizer, steps_per_epoch, total_epochs)
        self.window = window_of(self.name, self.hp, self.total_steps)
        self._event(0)  # an event scheduled at step 0 happens before training

    def sparsity_at_step(self, step: int) -> float:
        """The schedule's sparsity s_t at an event step (s_i capped at the target)."""
        initial = min(self.hp.initial_sparsity, self.target_sparsity)
        return self.window.sparsity_at(step, initial, self.target_sparsity)

    def _event(self, step: int) -> None:
        if self.window.event_at(step) is None:
            return
        sparsity = self.sparsity_at_step(step)
        if sparsity > 0:
            self.prune_to(sparsity)

    def after_step(self, step: int) -> None:
        self._event(step)
        super().after_step(step)
