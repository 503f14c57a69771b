"""``imp``: iterative magnitude pruning with rewinding (the lottery-ticket procedure).

Frankle & Carbin, *The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural Networks*,
ICLR 2019; late rewinding from Frankle, Dziugaite, Roy & Carbin, *Linear Mode Connectivity and
the Lottery Ticket Hypothesis*, ICML 2020. Also the base method of the official AP code, whose
default ``--prune_type reinit`` re-initialises the net every round (``rewind=reinit`` here).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from methods.base import EpochPlan, MaskedMethod
from methods.hparams import MaskHparams, hp
from methods.reinit import reinitialise

REWINDS = ("weights", "reinit")


@dataclass(frozen=True)
class IMPHparams(MaskHparams):
    prune_fraction: float = hp(0.2, "fraction p of the surviving weights removed per round",
                               range=(0.01, 0.99))
    rewind_epoch: float = hp(0.0, "rewind point, in epochs into the first (dense) round: 0 = the "
                             "initial weights θ0 (Frankle & Carbin); > 0 = late rewinding",
                             range=(0.0, None))
    rewind: str = hp("weights", "what survivors restart from each round: the rewind point "
                     "(weights: θ0, or θ at rewind_epoch) or a fresh random initialisation drawn "
                     "like the model factory's (reinit: the official AP code's default)",
                     choices=REWINDS)

    def __post_init__(self) -> None:
        if self.rewind == "reinit" and self.rewind_epoch > 0:
            raise ValueError(f"rewind=reinit draws a fresh initialisation every round, so rewind_epoch "
                             f"must be 0 (got {self.rewind_epoch:g})")


def imp_rounds(target_sparsity: float, prune_fraction: float) -> int:
    """Pruning rounds r so that (1 − p)^r first reaches density ≤ 1 − target."""
    if target_sparsity <= 0:
        return 0
    rounds = math.log(1.0 - target_sparsity) / math.log(1.0 - prune_fraction)
    return max(1, math.ceil(rounds - 1e-9))


def imp_round_densities(target_sparsity: float, prune_fraction: float) -> list[float]:
    """Density after each pruning round: (1 − p)^r, the last round clipped to the target."""
    rounds = imp_rounds(target_sparsity, prune_fraction)
    floor = 1.0 - target_sparsity
    return [max((1.0 - prune_fraction) ** r, floor) for r in range(1, rounds + 1)]


class IMP(MaskedMethod):
    """Iterative magnitude pruning with weight rewinding.

    Round 0 trains the dense net for the grid's epoch budget E. Each of the r following rounds
    first prunes ``prune_fraction`` of the surviving weights by magnitude (the last round prunes
    exactly to the target), rewinds every parameter and BN statistic to the rewind point (masked),
    resets the optimizer state and the LR schedule, and retrains for E epochs. The real budget is
    therefore (r + 1)·E epochs, and the leaderboard's ``epochs`` column shows it.

    ``rewind=reinit`` replaces the rewind by a fresh random initialisation each round (masked), as
    the official AP code's default ``--prune_type reinit`` does. It draws from a seed derived from
    the run seed and the round (:func:`reinit_seed`), under a forked RNG, so the shared data order
    is untouched, and it draws exactly what the model factory draws (each module's default
    initialisation, then ``models.registry.init_weights``; BN statistics reset), not the official
    code's Xavier-normal ``weight_init``: every method of a grid keeps one initialisation scheme.

    Deviations from the official AP code, on purpose (spec ``ap.md``): optimizer momentum is reset
    at every rewind (otherwise stale momentum revives pruned weights), biases are rewound from a
    true copy, BN parameters and biases are never in the pruning pool, and the round after a prune
    is trained once (the official code trains it twice, logging only the second run).
    """

    name = "imp"
    description = "iterative magnitude pruning with rewinding, (rounds+1)×epochs (Frankle & Carbin 2019)"
    Hparams = IMPHparams
    state_attributes = ("rewind_state", "round")

    def plan(self, epochs: int) -> EpochPlan:
        rounds = imp_rounds(self.target_sparsity, self.hp.prune_fraction)
        return EpochPlan(total_epochs=(rounds + 1) * epochs, lr_cycle_epochs=epochs)

    def check(self, model, steps_per_epoch, total_epochs) -> None:
        super().check(model, steps_per_epoch, total_epochs)
        rounds = len(imp_round_densities(self.target_sparsity, self.hp.prune_fraction)) + 1
        round_epochs = total_epochs // rounds
        if round_epochs < 1:
            raise ValueError(f"imp: {total_epochs} epochs cannot hold {rounds} rounds")
        if round(self.hp.rewind_epoch * steps_per_epoch) > round_epochs * steps_per_epoch:
            raise ValueError(f"imp: rewind_epoch {self.hp.rewind_epoch} is beyond the first round "
                             f"({round_epochs} epochs)")

    def attach(self, model, optimizer, steps_per_epoch, total_epochs) -> None:
        super().attach(model, optimizer, steps_per_epoch, total_epochs)
        self.densities = imp_round_densities(self.target_sparsity, self.hp.prune_fraction)
        self.round_epochs = total_epochs // (len(self.densities) + 1)
        self.rewind_step = round(self.hp.rewind_epoch * steps_per_epoch)
        self.round = 0
        self.rewind_state = None
        if self.rewind_step == 0 and self.hp.rewind == "weights":
            self._snapshot()

    def _snapshot(self) -> None:
        self.rewind_state = copy.deepcopy(self.model.state_dict())

    def after_step(self, step: int) -> None:
        if step == self.rewind_step and self.hp.rewind == "weights":
            self._snapshot()
        super().after_step(step)

    def on_epoch_end(self, epoch: int) -> None:
        finished_round, rest = divmod(epoch + 1, self.round_epochs)
        if rest or finished_round > len(self.densities):
            return
        self.round = finished_round
        self.prune_to(1.0 - self.densities[finished_round - 1])
        self.rewind()

    def rewind(self) -> None:
        """Weights and BN statistics to the rewind point or freshly drawn (masked); fresh optimizer state."""
        if self.hp.rewind == "reinit":
            reinitialise(self.model, reinit_seed(self.seed, self.round))
        else:
            self.model.load_state_dict(self.rewind_state)
        self.optimizer.state.clear()
        self.apply_masks()


def reinit_seed(run_seed: int, round_: int) -> int:
    """Seed of round ``round_``'s (≥ 1) fresh draw: draw number ``round_`` of a run-seeded generator."""
    gen = torch.Generator().manual_seed(run_seed)
    return int(torch.randint(0, 2 ** 62, (round_,), generator=gen)[-1])
