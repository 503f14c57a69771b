"""``dnr``: DNR-Pruning, sparsity-aware pruning via dying neuron reactivation — our reconstruction.

Wang & Jiang, *DNR-Pruning: Sparsity-Aware Pruning via Dying Neuron Reactivation in Convolutional
Neural Networks*, TMLR 2025 (OpenReview ymUjGCNPYa; code github.com/wangbst/DNR-Pruning).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from methods.dead_units import CHECKS_PER_EPOCH, DeadUnitTracker
from methods.hparams import hp
from methods.magnitude import GMP, GMPHparams
from methods.pressure import DeadUnitHparams, DeathPressure, lambda_peak_hp
from methods.units import reinit_units, unit_keep_masks, zero_units

REACTIVATIONS = ("regrow", "reinit")


@dataclass(frozen=True)
class DNRHparams(GMPHparams, DeadUnitHparams):
    lambda_peak: float = lambda_peak_hp(1e-3)  # tuned on a validation split: docs/results/tuning.md
    span_frac: float = hp(0.0, "the one-cycle of λ and σ spans this fraction of the training steps; "
                          "0 = end_frac (the pressure acts while pruning)", range=(0.0, 1.0))
    check_every: int = hp(0, "steps between dead-unit checks on the probe; 0 = the prune interval Δt, "
                          "at most 3 checks per epoch", range=(0, None))
    patience: int = hp(3, "a unit dead at this many consecutive checks is pruned for good (masked)",
                       range=(1, None))
    reactivation: str = hp("regrow", "what a dead unit gets before it is pruned: regrow = incoming "
                           "weights zeroed, not masked (official code); reinit = re-initialised once",
                           choices=REACTIVATIONS)


class DNR(GMP):
    """DNR-Pruning as we reconstruct it: ``gmp`` plus dead-unit monitoring, death pressure and
    reactivation.

    Wang & Jiang, TMLR 2025. **This is a documented reconstruction, not the paper's algorithm**:
    the official code never ran (its monitoring hooks are empty in every commit) and the paper's
    Algorithm 1 could not be read; what is public is the abstract, the repository's code and
    figures (``shared/background/anchors-refresh.md`` §1). Each rule and its source:

    1. *Monitoring dying units* (paper abstract: "dynamically monitors the occurrence of dying
       neurons"; the criterion is DemP's, our choice). Every ``check_every`` steps (default: the
       prune interval Δt, at most 3 checks per epoch) a fixed probe slice of the training set
       goes through the net in eval mode; a unit is dead when its output is ≤ ``eps`` for every
       sample and position (for LeakyReLU/swish, which have no exact zero: the pre-activation;
       see :mod:`methods.activations`). Pruned units are skipped.
    2. *Death pressure* (the paper's and repository's hyperparameter studies — regularisation λ
       and SGD noise make more neurons die; the form and the one-cycle schedule are DemP's, our
       choice): :class:`methods.pressure.DeathPressure`, spanning the pruning window by default.
    3. *Reactivation* (official code: channels are zeroed without a persistent mask, so they can
       regrow; ``reinit`` and ``patience`` are our choice). A unit found dead is zeroed — incoming
       weights, bias and BN γ/β set to 0, optimizer state kept as the official code keeps it — and
       may come back (``regrow``); or its incoming weights are re-initialised once, at the first
       check of each dead streak (``reinit``; fresh optimizer state). A unit dead at ``patience``
       consecutive checks is pruned for good: incoming weights, bias, BN γ/β and the consumers'
       input columns are masked and stay exactly zero with their optimizer state, and it counts
       in ``neuron_sparsity``. A unit found alive again resets its count. The classifier never
       forms units. Under ReLU a zeroed unit gets no gradient (ReLU′(0) = 0): it moves only by its
       optimizer state (momentum, noise does not reach it); under LeakyReLU/swish it does.
    4. *Weight sparsity* (our choice, so ``dnr`` meets the grid's targets like every method):
       ``gmp``'s cubic schedule through :meth:`prune_to` (so ``dnr+ap`` composes), with scores
       that know about units. Pruned units' weights are masked for good and count toward each
       event's target. When unit pruning has masked more than an event's target needs, the
       event gives weights back: those gmp masked earlier with the largest |W| at that time,
       restored to that value (the prune undone), so the weight sparsity follows the schedule
       and ends exactly at the target (above it only if pruned units alone exceed it). A unit
       zeroed and awaiting its fate has |W| = 0 and would be the first pruned by magnitude, which
       would end its chance to come back; gmp scores its weights by the magnitudes they had when
       it was zeroed — as if it had not been zeroed. The structural phase ends at the last prune
       event t_f: there every unit dead on the probe is pruned (DemP's final check) and zeroed
       units alive again are cleared, so no zeroed-but-unmasked weight outlives t_f.

    With λ = σ = 0 and no unit ever dead this is ``gmp`` weight for weight. How it differs from
    ``demp``: DemP has no weight target (λ sets the sparsity), prunes every dead unit at once and
    never reactivates; ``dnr`` reaches the grid's weight sparsity by magnitude and gives dead
    units ``patience`` checks to come back.
    """

    name = "dnr"
    description = ("DNR-Pruning, our reconstruction: gmp + dead-unit checks, λ/σ death pressure, "
                   "zeroed units may regrow, pruned after patience checks (Wang & Jiang 2025)")
    Hparams = DNRHparams
    wants_probe = True

    def attach(self, model, optimizer, steps_per_epoch, total_epochs) -> None:
        self.tracker = DeadUnitTracker(model)
        self._memory: dict[str, Tensor] = {}  # weights' values before DNR or gmp zeroed them
        super().attach(model, optimizer, steps_per_epoch, total_epochs)
        span = round((self.hp.span_frac or self.hp.end_frac) * self.total_steps)
        self.pressure = DeathPressure(model, self.tracker.all_groups, self.hp.lambda_peak,
                                      self.hp.noise_peak, span, self.seed)
        self.check_every = self.hp.check_every or max(self.window.interval,
                                                      steps_per_epoch // CHECKS_PER_EPOCH)
        self.generator = torch.Generator().manual_seed(int(self.seed) * 104729 + 3)

    # hooks ------------------------------------------------------------------------------------
    def after_backward(self, step: int) -> None:
        self.pressure.add_penalty_grad(step)
        super().after_backward(step)

    def after_step(self, step: int) -> None:
        self.pressure.add_noise(step)
        end = self.window.end
        if step == end or (step < end and step % self.check_every == 0):
            self.check_units(final=step == end)
        super().after_step(step)  # gmp's prune event, then masks

    # units ------------------------------------------------------------------------------------
    def check_units(self, final: bool = False) -> None:
        """One check: reactivate units found dead, prune those dead ``patience`` times (all at t_f)."""
        dead = self.tracker.check(self.probe, self.hp.eps)
        to_prune = {}
        for group in self.tracker.groups:
            d = dead.get(group.activation)
            if d is None:
                continue
            streak = self.tracker.streak[group.activation]
            prune = d if final else d & (streak >= self.hp.patience)
            to_prune[group.activation] = prune
            if self.hp.reactivation == "regrow":
                self._remember_magnitudes(group, d & (streak == 1) & ~prune)
                units = (d & ~prune).nonzero().flatten()
                if units.numel():
                    zero_units(self.model, group, units)
            else:
                units = (d & (streak == 1) & ~prune).nonzero().flatten()
                if units.numel():
                    reinit_units(self.model, group, units, self.generator, self.optimizer)
        self.tracker.prune(self, to_prune)

    def _remember_magnitudes(self, group, rows: Tensor) -> None:
        """Remember the producers' rows about to be zeroed for the first time in a dead streak."""
        if not bool(rows.any()):
            return
        for producer in group.producers:
            name = f"{producer}.weight"
            if name in self.weights:
                shape = (-1,) + (1,) * (self.weights[name].dim() - 1)
                self._remember(name, rows.view(shape).expand_as(self.weights[name]))

    def _remember(self, name: str, where: Tensor) -> None:
        """Store the current values of weight ``name`` at ``where`` (before DNR or gmp zeroes them)."""
        w = self.weights[name].detach()
        memory = self._memory.setdefault(name, torch.zeros_like(w))
        memory[where] = w[where]

    def awaiting(self) -> dict[str, Tensor]:
        """Units zeroed under ``regrow`` whose fate is open (dead streak > 0, not pruned)."""
        if self.hp.reactivation != "regrow":
            return {}
        return {name: s > 0 for name, s in self.tracker.streak.items()}

    # prune events -------------------------------------------------------------------------------
    def scores(self) -> dict[str, Tensor]:
        """gmp's |W|, adjusted for units: pruned units' weights first (−2), then masked weights by
        ascending |W| when they were masked (in [−1, 0)), then live weights by |W| — where a zeroed
        unit awaiting its fate counts with the |W| it had before it was zeroed."""
        scores = super().scores()
        for name, memory in self._memory.items():
            masked = scores[name] < 0
            scores[name] = torch.where(masked, -1.0 / (1.0 + memory.abs().float()), scores[name])
        awaiting = self.awaiting()
        for group in self.tracker.groups:
            rows = awaiting.get(group.activation)
            if rows is None or not bool(rows.any()):
                continue
            for name in (f"{p}.weight" for p in group.producers):
                if name in scores:
                    shape = (-1,) + (1,) * (scores[name].dim() - 1)
                    live = rows.view(shape) & (scores[name] >= 0)
                    scores[name] = torch.where(live, self._memory[name].abs().float(), scores[name])
        for name, keep in self._unit_keep().items():
            scores[name] = scores[name].masked_fill(~keep, -2.0)
        return scores

    def _unit_keep(self) -> dict[str, Tensor]:
        """Keep-masks of the pruned units' weight slices (empty while no unit is pruned)."""
        if not self.tracker.n_pruned():
            return {}
        keep = unit_keep_masks(self.model, self.tracker.pruned, self.tracker.groups)
        return {name: k for name, k in keep.items() if name in self.weights}

    @torch.no_grad()
    def set_masks(self, masks: dict[str, Tensor]) -> None:
        """Install weight masks: pruned units' slices stay masked whatever the selection chose;
        newly masked weights are remembered, and weights given back get their remembered value."""
        masks = {name: m.bool() for name, m in masks.items()}
        for name, keep in self._unit_keep().items():
            masks[name] = masks[name] & keep if name in masks else keep
        restored = {}
        for name, new in masks.items():
            old = self.masks[name].bool() if name in self.masks else torch.ones_like(new)
            w = self.weights[name].detach()
            self._remember(name, old & ~new & (w != 0))
            if name in self._memory:
                restored[name] = ~old & new
        super().set_masks(masks)
        for name, where in restored.items():
            self.weights[name].data[where] = self._memory[name][where]

    # checkpointing ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "tracker": self.tracker.state_dict(),
                "pressure": self.pressure.state_dict(), "generator": self.generator.get_state(),
                "memory": {n: t.cpu() for n, t in self._memory.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tracker.load_state_dict(state["tracker"])
        self.pressure.load_state_dict(state["pressure"])
        self.generator.set_state(state["generator"])
        self._memory = {n: t.to(self.weights[n].device) for n, t in state["memory"].items()}
        super().load_state_dict(state)
