"""Death pressure: the regularisation and update noise that make units die, on DemP's one-cycle.

Dufort-Labbé et al., *Maxwell's Demon at Work: Efficient Pruning by Leveraging Saturation of
Neurons*, arXiv 2403.07688 (code SimonDufLab/Maxwell_demon): more regularisation and more SGD
noise give more dead units. Both act through the method hooks, so the training loop is untouched:

- **λ** — the gradient of λ(t)·R is added to the parameters' gradients in ``after_backward``
  (exactly as if λ(t)·R were part of the loss; the optimizer sees it, momentum included). R is
  the L1 norm of the BatchNorm scales γ of every unit that has one (DemP's ``lasso`` on
  ``scale_only``), and for units without BatchNorm the group L2 norm Σ_u ‖W_u‖₂ of each unit's
  incoming weight row (our choice for BN-free models such as LeNet-5; biases are left free, so
  a unit dies when its shrunken weights can no longer lift its pre-activation above a negative
  bias). Subgradient 0 at 0.
- **σ** — after the optimizer step, N(0, σ(t)²) noise is added to every parameter entry whose
  gradient (penalty included, after masking) is non-zero: the update noise "on active units" of
  DemP (not scaled by the learning rate, not seen by momentum). Drawn from the method's own
  seeded generator, never the global RNG, so data order and initialisation stay those of every
  other method.

λ(t) and σ(t) follow :func:`methods.schedules.one_cycle` over ``span`` steps (peak at 30%). After
the span both are 0 rather than the one-cycle's residual peak/2.5e5 (DemP keeps that residual):
σ = 2e-10 and λ = 4e-9 change no fp32 weight of ordinary scale, and skipping them saves a Gaussian
draw for every parameter at every remaining step (the largest per-step cost of the family).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from methods.hparams import hp
from methods.schedules import one_cycle
from methods.units import UnitGroup


def lambda_peak_hp(default: float) -> Any:
    """The ``lambda_peak`` field (each method of the family has its own default)."""
    return hp(default, "peak λ of the one-cycle death pressure: L1 on BN scales γ, or group L2 on each "
              "unit's incoming weights without BN", range=(0.0, None))


@dataclass(frozen=True)
class DeadUnitHparams:
    """Death pressure and the dead-unit threshold: shared by the dead-unit family (dnr, demp)."""
    lambda_peak: float = lambda_peak_hp(0.0)
    noise_peak: float = hp(5e-5, "peak std σ of the one-cycle Gaussian noise added to the parameter "
                           "update where the gradient is non-zero (DemP: 5e-5)", range=(0.0, None))
    span_frac: float = hp(0.9, "the one-cycle of λ and σ spans this fraction of the training steps "
                          "(peak at 30% of it, ≈0 after it)", range=(0.0, 1.0))
    eps: float = hp(0.0, "a unit is dead when its output (ReLU) or pre-activation (other activations) "
                    "is ≤ eps for every probe sample and position", range=(0.0, None))


class DeathPressure:
    """λ(t)·R added to the gradients and σ(t) noise added to the updates, for one model."""

    def __init__(self, model: nn.Module, groups: list[UnitGroup], lambda_peak: float,
                 noise_peak: float, span: int, seed: int):
        self.lambda_peak, self.noise_peak, self.span = lambda_peak, noise_peak, max(1, span)
        modules = dict(model.named_modules())
        scales: dict[int, nn.Parameter] = {}
        rows: dict[int, nn.Parameter] = {}
        for group in groups:
            if group.norms:
                for name in group.norms:
                    weight = modules[name].weight
                    if weight is not None:
                        scales[id(weight)] = weight
            else:
                for name in group.producers:
                    rows[id(modules[name].weight)] = modules[name].weight
        self.scales, self.rows = list(scales.values()), list(rows.values())
        self.params = [p for p in model.parameters() if p.requires_grad]
        device = self.params[0].device if self.params else torch.device("cpu")
        self.generator = torch.Generator(device=device).manual_seed(int(seed) * 7919 + 17)

    def lam(self, step: int) -> float:
        """λ at 1-based ``step`` (the schedule's 0-based step ``step − 1``; 0 after the span)."""
        if not self.lambda_peak or step > self.span:
            return 0.0
        return one_cycle(step - 1, self.span, self.lambda_peak)

    def sigma(self, step: int) -> float:
        """σ at 1-based ``step`` (0 after the span)."""
        if not self.noise_peak or step > self.span:
            return 0.0
        return one_cycle(step - 1, self.span, self.noise_peak)

    @torch.no_grad()
    def add_penalty_grad(self, step: int) -> None:
        """Add λ(t)·∂R/∂θ to the gradients (call before gradients are masked)."""
        lam = self.lam(step)
        if lam == 0.0:
            return
        scales = [p for p in self.scales if p.grad is not None]
        if scales:
            torch._foreach_add_([p.grad for p in scales], torch._foreach_sign(scales), alpha=lam)
        for w in self.rows:
            if w.grad is None:
                continue
            norms = w.flatten(1).norm(dim=1).clamp_min(torch.finfo(w.dtype).tiny)
            w.grad.add_(w / norms.view((-1,) + (1,) * (w.dim() - 1)), alpha=lam)

    @torch.no_grad()
    def add_noise(self, step: int) -> None:
        """Add σ(t)·ξ to every parameter entry with a non-zero gradient (call after the step)."""
        sigma = self.sigma(step)
        if sigma == 0.0:
            return
        for p in self.params:
            if p.grad is None:
                continue
            noise = torch.randn(p.shape, generator=self.generator, device=p.device, dtype=p.dtype)
            p.add_(noise.mul_(p.grad != 0), alpha=sigma)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
