"""``demp``: Demon Pruning — dead units pruned while training under scheduled death pressure.

Dufort-Labbé, D'Oro, Nikishin, Rish, Pascanu, Bacon & Baratin, *Maxwell's Demon at Work: Efficient
Pruning by Leveraging Saturation of Neurons*, arXiv 2403.07688 (code SimonDufLab/Maxwell_demon).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from methods.base import Calibration, PruningMethod
from methods.dead_units import CHECKS_PER_EPOCH, DeadUnitTracker
from methods.hparams import hp
from methods.masks import all_prunable_weights
from methods.pressure import DeadUnitHparams, DeathPressure

#: DemP prunes every 5,000 of 97,656 steps on CIFAR ResNet-18: about 20 checks per run.
CHECKS_PER_RUN = 20


@dataclass(frozen=True)
class DemPHparams(DeadUnitHparams):
    prune_every: int = hp(0, "steps between dead-unit pruning checks; 0 = 1/20 of the run (DemP: 5,000 "
                          "of 97,656 steps on CIFAR ResNet-18), at most 3 per epoch", range=(0, None))


class DemP(PruningMethod):
    """Demon Pruning (DemP): prune the units that die under scheduled L1 pressure and update noise.

    Dufort-Labbé et al., arXiv 2403.07688, following their JAX code:

    - **Death check** (code ``death_check_given_model``): a fixed probe slice of the training set
      (3 batches of 512, no augmentation) in eval mode; a unit (conv channel, hidden neuron) is
      dead when its post-activation output is ≤ ``eps`` (0) for every sample and position, ANDed
      over the batches. For activations without an exact zero the pre-activation is watched (see
      :mod:`methods.activations`).
    - **Pruning**: at step 0, every ``prune_every`` steps and after the last step, every dead unit
      is removed. DemP slices the network physically; here its incoming weights, bias, BN γ/β and
      the consumers' input columns are masked and stay exactly zero with their optimizer state —
      the same function (a pruned unit outputs act(0) = 0). The classifier never forms units;
      units behind an identity shortcut cannot be masked away and are left alone
      (:mod:`methods.units`). ``prune_every`` scales with the run: 1/20 of the steps, DemP's
      CIFAR ResNet-18 ratio (5,000 of 97,656), and at most 3 checks per epoch (monitoring cost).
    - **Death pressure** (:mod:`methods.pressure`): L1 on BN scales γ (DemP's ``scale_only``
      lasso; group L2 on incoming weights in BN-free models, our choice) with strength λ(t), and
      Gaussian noise of std σ(t) (peak 5e-5) on the update of every parameter entry with a
      non-zero gradient, both on DemP's one-cycle over ``span_frac`` (0.9, the code's
      ``zero_end_reg_param`` rule) of the run.
    - **No weight target**: λ_peak sets the sparsity. ``calibration`` declares ``lambda_peak`` so
      the harness searches it when the grid gives a target and ``lambda_peak`` is 0. With target
      0 and λ_peak = 0 the run is DemP without regularisation: only units that die on their own
      (under the noise) are pruned — the method's floor. Its native output is ``neuron_sparsity``.

    Deviations: the grid's optimizer is used (fair protocol), whereas DemP's recipe is AdamW
    (lr 5e-3, weight decay 5e-4) or its own decoupled SGD-momentum; masks instead of physical
    removal, so no training speed-up is measured.
    """

    name = "demp"
    description = ("Demon Pruning: dead units pruned every prune_every steps under one-cycle L1/noise "
                   "pressure; λ_peak sets the sparsity (Dufort-Labbé et al. 2024)")
    Hparams = DemPHparams
    wants_probe = True
    calibration = Calibration(hparam="lambda_peak", low=1e-4, high=1.0)

    def attach(self, model, optimizer, steps_per_epoch, total_epochs) -> None:
        super().attach(model, optimizer, steps_per_epoch, total_epochs)
        self.weights = all_prunable_weights(model)
        self.tracker = DeadUnitTracker(model)
        self.pressure = DeathPressure(model, self.tracker.all_groups, self.hp.lambda_peak, self.hp.noise_peak,
                                      round(self.hp.span_frac * self.total_steps), self.seed)
        self.prune_every = self.hp.prune_every or max(1, round(self.total_steps / CHECKS_PER_RUN),
                                                      steps_per_epoch // CHECKS_PER_EPOCH)
        self.prune_dead()  # DemP checks at step 0 too

    def after_backward(self, step: int) -> None:
        self.pressure.add_penalty_grad(step)
        super().after_backward(step)

    def after_step(self, step: int) -> None:
        self.pressure.add_noise(step)
        if step % self.prune_every == 0 or step == self.total_steps:
            self.prune_dead()
        super().after_step(step)

    def prune_dead(self) -> int:
        """Mask every unit dead on the probe now; returns how many were newly pruned."""
        return self.tracker.prune(self, self.tracker.check(self.probe, self.hp.eps))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "tracker": self.tracker.state_dict(),
                "pressure": self.pressure.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tracker.load_state_dict(state["tracker"])
        self.pressure.load_state_dict(state["pressure"])
        super().load_state_dict(state)
