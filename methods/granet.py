"""GraNet (gradual pruning with zero-cost neuroregeneration) and, from the same machinery, the
dynamic-sparse baselines RigL and SET: ``granet``, ``granet-st``, ``rigl``, ``set``.

Spec: ``shared/specs/granet.md``. The pieces are shared: the cubic schedule and its window
(:class:`methods.schedules.PruneWindow`, whose :meth:`~PruneWindow.update_at` says when masks are
regenerated), the death-rate schedule (:func:`methods.schedules.cosine_decay`), the swap itself
(:func:`methods.masks.drop_and_grow`), random sparse starts with exact per-layer counts
(:func:`methods.masks.random_masks` over :func:`methods.budgets.layer_counts`). This module only
wires them to the hooks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from methods.base import PruningMethod
from methods.budgets import BUDGETS
from methods.hparams import field_like, hp
from methods.magnitude import GMP, GMPHparams
from methods.masks import (all_prunable_weights, check_reachable, drop_and_grow, prunable_weights,
                           random_masks)
from methods.schedules import cosine_decay, window_of

GROWTH = ("gradient", "random")


@dataclass(frozen=True)
class RegrowthHparams:
    """The regeneration (drop-and-grow) knobs shared by GraNet, RigL and SET."""
    death_rate: float = hp(0.5, "death rate r_0: fraction of each layer's active weights swapped "
                           "(dropped by |W|, regrown) at a regeneration; 0 = no regeneration",
                           range=(0.0, 1.0))
    death_rate_final: float = hp(0.005, "the death rate at the last step (cosine from death_rate; "
                                 "capped at death_rate)", range=(0.0, 1.0))
    regrow_until_end: bool = hp(True, "regenerate every Δt until the end of training (the official "
                                "code); false: only inside the window [start_frac, end_frac]")
    init_budget: str = hp("erk", "per-layer densities of a random sparse start (initial_sparsity > 0, "
                          "rigl, set): erk or uniform", choices=BUDGETS)

    def __post_init__(self) -> None:
        for name in ("death_rate", "death_rate_final"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1); got {value!r}")


@dataclass(frozen=True)
class GraNetHparams(RegrowthHparams, GMPHparams):
    growth: str = hp("gradient", "where regrown weights go: largest |dense gradient| of the event "
                     "step's minibatch (gradient, GraNet/RigL) or uniformly at random (random, SET)",
                     choices=GROWTH)


@dataclass(frozen=True)
class GraNetSTHparams(GraNetHparams):
    initial_sparsity: float = field_like(GMPHparams, "initial_sparsity", 0.5,
                                         "sparsity s_i of the random (init_budget) start")


@dataclass(frozen=True)
class DSTHparams(RegrowthHparams):
    prune_first: bool = field_like(GMPHparams, "prune_first")
    prune_classifier: bool = field_like(GMPHparams, "prune_classifier")
    start_frac: float = field_like(GMPHparams, "start_frac",
                                   help="regeneration starts at this fraction of the training steps")
    end_frac: float = field_like(GMPHparams, "end_frac", help="with interval=0, Δt = 1/30 of "
                                 "[start_frac, end_frac]; regeneration stops here unless "
                                 "regrow_until_end")
    interval: int = field_like(GMPHparams, "interval", help="steps between regenerations Δt; 0 = "
                               "1/30 of the window [start_frac, end_frac] (as granet)")


class Regeneration:
    """Zero-cost neuroregeneration: per-layer drop-and-grow at the update steps of ``window``.

    Mixed in before a :class:`PruningMethod` that sets ``weights``, ``masks``, ``window`` and
    ``generator`` in ``attach`` and then calls :meth:`init_regeneration`. At an update step t the
    dense minibatch gradient is read in ``after_backward`` (before the base masks it; only for
    gradient growth, only at update steps), and after the step and the host's own after-step work
    (GraNet's prune event) :meth:`regenerate` swaps, in every layer, m = ⌈r_t·nnz⌉ connections.
    Nothing else runs on other steps.
    """

    growth_mode: str = "gradient"
    state_attributes: ClassVar[tuple[str, ...]] = ("rng_state",)

    def init_regeneration(self) -> None:
        last = self.total_steps - 1 if self.hp.regrow_until_end else self.window.end
        self.regrow_last = max(last, 0)
        self.death_rate_final = min(self.hp.death_rate_final, self.hp.death_rate)
        self._grow_scores: dict[str, Tensor] | None = None

    def death_rate_at(self, step: int) -> float:
        """r_t: cosine from ``death_rate`` at step 0 to ``death_rate_final`` at the last step."""
        return cosine_decay(step, self.total_steps, self.hp.death_rate, self.death_rate_final)

    def regenerates_at(self, step: int) -> bool:
        """Whether ``step`` is a regeneration step (never when ``death_rate`` is 0)."""
        return self.hp.death_rate > 0 and self.window.update_at(step, self.regrow_last)

    @property
    def rng_state(self) -> Tensor:
        """State of the method's own generator (random starts, random growth): checkpointed."""
        return self.generator.get_state()

    @rng_state.setter
    def rng_state(self, state: Tensor) -> None:
        self.generator.set_state(state)

    def after_backward(self, step: int) -> None:
        if self.growth_mode == "gradient" and self.regenerates_at(step):
            self._grow_scores = {n: w.grad.detach().abs() if w.grad is not None else torch.zeros_like(w)
                                 for n, w in self.weights.items()}
        super().after_backward(step)

    def after_step(self, step: int) -> None:
        super().after_step(step)
        if self.regenerates_at(step):
            self.regenerate(step)

    @torch.no_grad()
    def regenerate(self, step: int) -> None:
        """Swap m = ⌈r_t·nnz⌉ connections in every masked layer; nonzero counts are unchanged.

        Drops the m smallest-|W| active weights and grows m at the inactive positions (the
        just-dropped ones included) with the largest growth score. A position that was inactive
        before the swap starts at exactly zero with zero optimizer state; a just-dropped position
        that is regrown keeps its weight and momentum, as in the official GraNet and RigL code. A
        dense net (no masks yet) or a dense layer has no inactive position but the dropped ones, so
        nothing changes there.
        """
        scores, self._grow_scores = self._grow_scores, None
        if not self.masks:
            return
        if self.growth_mode == "gradient" and scores is None:
            raise RuntimeError(f"{self.name}: regenerate({step}) needs the dense gradients that "
                               f"after_backward({step}) keeps at a regeneration step")
        rate = self.death_rate_at(step)
        new_masks = dict(self.masks)
        for name, w in self.weights.items():
            mask = self.masks[name]
            nnz = int(torch.count_nonzero(mask))
            m = math.ceil(rate * nnz)
            if m == 0 or nnz == mask.numel():
                continue
            grow = (scores[name] if self.growth_mode == "gradient"
                    else torch.rand(w.shape, generator=self.generator).to(w.device))
            new_masks[name] = drop_and_grow(mask.bool(), w.abs(), grow, m)
        # Newly grown positions are already exactly zero, weight and optimizer state: the base
        # keeps masked weights and their state at zero after every step (before this hook runs).
        self.set_masks(new_masks)


class GraNet(Regeneration, GMP):
    """GraNet: gradual magnitude pruning with zero-cost neuroregeneration, dense-to-sparse.

    Liu, Chen, Chen, Atashgahi, Yin, Kou, Shen, Pechenizkiy, Wang & Mocanu, *Sparse Training via
    Boosting Pruning Plasticity with Neuroregeneration*, NeurIPS 2021 (arXiv 2106.10404); official
    code github.com/Shiweiliuiiiiiii/GraNet (``CIFAR/sparselearning/core.py``).

    The pruning is ``gmp``'s, unchanged: every Δt steps in [t0, tf] the net is pruned by global
    magnitude to the cubic s_t through :meth:`prune_to` (the only net removal, where AP hooks in).
    Then, at every such event after step 0 and (``regrow_until_end``) every Δt after tf until the
    end of training, each layer swaps m = ⌈r_t·nnz⌉ connections: the m smallest-|W| active weights
    are dropped and m are grown at the inactive positions with the largest |∂L/∂W| of the event
    step's minibatch (``growth=random``: random positions). Newly grown weights and their momentum
    start at zero; the layer's nonzero count is unchanged. r_t follows a cosine over all steps from
    ``death_rate`` (0.5) to ``death_rate_final`` (0.005). ``initial_sparsity`` s_i > 0 starts from
    a random ``init_budget`` (ERK) mask at s_i before the first step (``granet-st``). Every
    Conv2d/Linear weight is pruned, first layer and classifier included (the official CIFAR
    default). With ``death_rate=0`` and s_i = 0 this is ``gmp`` weight for weight.

    Schedule scaling: Δt and the window follow ``gmp``'s rule: tf = ``end_frac`` (0.5) of the run,
    as the recipe's epoch 80 of 160, and ``interval=0`` gives Δt = ⌊(tf − t0)/30⌋, so short budgets
    keep the shape. The recipe's Δt = 1000 iterations gives 27 prune events with its default 10%
    validation split (45k/128 → 352 iterations per epoch) and 30 on the full 50k set (391): it
    prunes at t = 1000, 2000, … (never at step 0) only while ⌊t/Δt⌋ ≤ ⌊80 · iterations/Δt⌋ − 1.

    Deviations from the official code:

    - The schedule's last event falls exactly on tf and reaches s_f; the official code indexes
      events k0 … kf − 1, so its last event falls 1/n³ of the way short of s_f.
    - Exact counts: pruning keeps exactly round((1 − s_t)·N) weights and each swap moves exactly
      m per layer (ties by flat index). The official prune step keeps int((1 − s_t)·N) − 1 weights
      at every event: with k = int((1 − s_t)·N), its strict ``>`` against the k-th largest |W| drops
      that k-th weight too (a weight tied with it would go as well); its swap drops ⌈r_t·nnz⌉ per
      layer, more only on ties.
    - The random sparse start has exact per-layer counts from the ERK (or uniform) densities,
      at random positions from the method's own generator seeded by the run seed, instead of a
      per-element Bernoulli draw from the global RNG (which would also shift the data order).
    - No regeneration at the very last training step (its regrown weights would end untrained at
      zero and count as pruned); with ``death_rate=0`` the final rate is 0 as well, so regeneration
      is off (the official cosine would rise from 0 to 0.005).
    - Past tf the regeneration steps stay on the grid t0 + jΔt (tf itself is an event when the
      window is not a multiple of Δt).
    - Final-epoch accuracy is reported, not the best test epoch.

    Not a deviation, though the spec's wording suggests one: a just-dropped weight that is
    regrown in the same swap keeps its value and momentum, as in the official GraNet code (it
    never zeroes dropped weights before growing) and RigL's reference code (only connections
    inactive before the update are re-initialised). Zeroing it would reset up to r_t of every
    layer at each early event of a dense-to-sparse run.
    """

    name = "granet"
    description = ("gradual magnitude pruning + zero-cost neuroregeneration (gradient regrowth), "
                   "dense-to-sparse (Liu et al. 2021)")
    Hparams = GraNetHparams

    def __init__(self, target_sparsity: float = 0.0, hparams: Any = None, seed: int = 0):
        super().__init__(target_sparsity, hparams, seed)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks against the target (one-line ``ValueError``); also run at construction."""
        if self.hp.initial_sparsity > self.target_sparsity:
            raise ValueError(f"{self.name}: initial_sparsity {self.hp.initial_sparsity:g} is above the "
                             f"target sparsity {self.target_sparsity:g}")
        check_window(self.hp)

    @property
    def growth_mode(self) -> str:
        return self.hp.growth

    def attach(self, model: nn.Module, optimizer: torch.optim.Optimizer, steps_per_epoch: int,
               total_epochs: int) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)
        super().attach(model, optimizer, steps_per_epoch, total_epochs)
        self.init_regeneration()

    def _event(self, step: int) -> None:
        if step == 0 and self.hp.initial_sparsity > 0:  # the sparse start replaces event 0
            self.set_masks(random_masks(self.weights, self.hp.initial_sparsity, self.total_prunable,
                                        self.hp.init_budget, self.generator))
            return
        super()._event(step)


class GraNetST(GraNet):
    """GraNet sparse-to-sparse: ``granet`` from a random ERK mask at s_i = 0.5 (Liu et al., 2021).

    The same class as ``granet`` with ``initial_sparsity`` defaulting to 0.5; the target must be
    at least s_i.
    """

    name = "granet-st"
    description = "GraNet sparse-to-sparse: random ERK start at initial_sparsity 0.5, then as granet"
    Hparams = GraNetSTHparams


class DynamicSparse(Regeneration, PruningMethod):
    """A fixed-density random sparse net whose connections are swapped every Δt (RigL, SET).

    The random ``init_budget`` (ERK) mask at the target is installed before the first step, with
    exact per-layer counts from the method's own seeded generator; then only regeneration, on
    GraNet's schedule (its "DST"/ITOP mode): at every Δt from ``start_frac`` until the end of
    training (``regrow_until_end``) or until ``end_frac``, with the cosine death rate. The density
    never changes, so there are no prune events for AP to ride on.
    """

    Hparams = DSTHparams
    has_prune_events = False

    def __init__(self, target_sparsity: float = 0.0, hparams: Any = None, seed: int = 0):
        super().__init__(target_sparsity, hparams, seed)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks (one-line ``ValueError``); also run at construction."""
        check_window(self.hp)

    def check(self, model: nn.Module, steps_per_epoch: int, total_epochs: int) -> None:
        """The target must be reachable by the allowed layers, and the window must hold Δt."""
        super().check(model, steps_per_epoch, total_epochs)
        check_reachable(model, self.target_sparsity, self.hp.prune_first, self.hp.prune_classifier)
        window_of(self.name, self.hp, steps_per_epoch * total_epochs)

    def attach(self, model: nn.Module, optimizer: torch.optim.Optimizer, steps_per_epoch: int,
               total_epochs: int) -> None:
        super().attach(model, optimizer, steps_per_epoch, total_epochs)
        self.weights = prunable_weights(model, self.hp.prune_first, self.hp.prune_classifier)
        self.total_prunable = sum(w.numel() for w in all_prunable_weights(model).values())
        self.window = window_of(self.name, self.hp, self.total_steps)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.set_masks(random_masks(self.weights, self.target_sparsity, self.total_prunable,
                                    self.hp.init_budget, self.generator))
        self.init_regeneration()


class RigL(DynamicSparse):
    """RigL in GraNet's ITOP form: fixed density, drop by |W|, grow by |dense gradient|.

    Evci, Gale, Menick, Castro & Elsen, *Rigging the Lottery: Making All Tickets Winners*, ICML
    2020; as run by the GraNet code's ``DST`` mode (Liu et al., *Do We Actually Need Dense
    Over-parameterization? In-Time Over-Parameterization in Sparse Training*, ICML 2021). Deviations
    from RigL's paper recipe: GraNet's schedule (cosine death rate 0.5 → 0.005 over all steps,
    updates until the end) instead of RigL's drop fraction 0.3 annealed to 0 at 75% of training;
    exact per-layer counts for the random ERK start. Drop/grow ties by flat index, no noise.
    """

    name = "rigl"
    description = "RigL (ITOP form): random ERK mask at the target, swap by |W| and |gradient| every Δt"
    growth_mode = "gradient"


class SET(DynamicSparse):
    """SET: fixed density, drop by |W|, grow at uniformly random inactive positions.

    Mocanu, Mocanu, Stone, Nguyen, Gibescu & Liotta, *Scalable training of artificial neural
    networks with adaptive sparse connectivity inspired by network science*, Nature
    Communications 9, 2383 (2018). Run on the same schedule and ERK start as ``rigl``; the random
    positions come from the method's generator seeded by the run seed (reproducible, and the
    global RNG that sets the data order is untouched). Deviation: SET drops the smallest positive
    and largest negative weights in equal parts and uses an Erdős–Rényi (not -Kernel) start; here
    the drop is by |W| and the start is the benchmark's ERK, as in the RigL/GraNet code bases.
    """

    name = "set"
    description = "SET: random ERK mask at the target, swap by |W| and random regrowth every Δt"
    growth_mode = "random"


def check_window(hparams: Any) -> None:
    """The regeneration/pruning window must be non-empty: ``start_frac < end_frac``."""
    if not hparams.start_frac < hparams.end_frac:
        raise ValueError(f"need start_frac < end_frac, got {hparams.start_frac:g} and {hparams.end_frac:g}")
