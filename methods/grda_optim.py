"""GRDA: the generalized regularized dual averaging optimizer behind directional pruning.

Chao, Wang, Xing & Cheng, *Directional Pruning of Deep Neural Networks*, NeurIPS 2020
(arXiv 2006.09358); official code: github.com/donlan2710/gRDA-Optimizer (``grda_pytorch.py``).
Written from the paper's update rule, not from that code.

For each parameter tensor, at every step n = 1, 2, … of its param group, with γ_n the group's
learning rate at that step::

    a_0 = w_0                                         accumulator: a copy of the initial weights
    a_n = a_{n-1} − γ_n · ∇ℓ(w_{n-1})                 plain gradient steps on the accumulator
    G_n = G_{n-1} + c · γ_n^(μ+½) · (n^μ − (n−1)^μ)   the threshold, G_0 = 0
    w_n = sign(a_n) · max(|a_n| − G_n, 0)             weights: the soft threshold of a_n

With a constant γ the threshold is G_n = c·γ^½·(nγ)^μ; the increment form keeps LR schedules
right (it grows with the *current* γ, as the official code does since its PR #10). ``c = 0`` is
plain SGD without momentum or weight decay. Pruning is soft: a zero weight comes back as soon as
its accumulator outgrows the threshold. Sparsity is an outcome of c, μ, γ and the run length.

Implementation choices (the official code differs on each):

- ``lr``, ``c`` and ``mu`` are read from the param group at every step, so LR schedulers work and a
  ``c = 0`` group (BN, biases) is plain SGD. The step size is ``lr · lr_scale`` (``lr_scale`` is a
  group option, default 1) so that a loop writing one shared lr into every group can still give
  gRDA its own step size; the threshold uses that same step size.
- One clock per group: ``group["step"]`` (n) and ``group["threshold"]`` (G_n), a host Python float
  that depends only on lr, c, μ and n, so no device sync is ever needed. A parameter whose
  gradient is ``None`` at a step is skipped like SGD skips it (accumulator and weight untouched),
  but its group's clock still advances, so its next update meets the group's current, larger
  threshold (its weight is re-thresholded only then). The official code keeps one counter per
  parameter instead, which lets the counters of one group drift apart.
- Accumulators are at least fp32 whatever the parameter dtype, so bf16/fp16 weights do not lose
  small steps. While a group's threshold is 0 an fp32 parameter *is* its accumulator (w = a
  exactly), so no copy is kept; it is created from the weights on the first step with G > 0.
- Multi-tensor updates (``torch._foreach_*``); the soft threshold is fused per tensor on CPU
  (``softshrink``, one pass) and ``foreach`` clamps on other devices (few kernel launches). Both
  give bit-identical results. ``foreach=None`` picks by device, like ``torch.optim``.
- ``state_dict()``/``load_state_dict()`` round-trip exactly, fp32 accumulators included (a plain
  ``Optimizer.load_state_dict`` would cast them to the parameter dtype).
"""
from __future__ import annotations

from itertools import chain
from typing import Any, Callable, Iterable

import torch
from torch import Tensor

_CLOCK = {"step": 0, "threshold": 0.0}


def check_grda_hparams(lr: float, c: float, mu: float) -> None:
    """ValueError unless lr ≥ 0, c ≥ 0 and 0.5 < mu < 1 (the paper's range for μ)."""
    if not lr >= 0:
        raise ValueError(f"GRDA learning rate must be ≥ 0, got {lr}")
    if not c >= 0:
        raise ValueError(f"GRDA c must be ≥ 0, got {c}")
    if not 0.5 < mu < 1:
        raise ValueError(f"GRDA mu must be in (0.5, 1), got {mu}")


def threshold_increment(lr: float, c: float, mu: float, n: int) -> float:
    """c · lr^(μ+½) · (n^μ − (n−1)^μ): what step ``n`` adds to the threshold."""
    return c * lr ** (mu + 0.5) * (n ** mu - (n - 1) ** mu)


def accumulator_dtype(param: Tensor) -> torch.dtype:
    """The parameter's dtype promoted to at least fp32."""
    return torch.promote_types(param.dtype, torch.float32)


class GRDA(torch.optim.Optimizer):
    """Generalized regularized dual averaging (Chao et al., NeurIPS 2020); see the module docstring.

    Args:
        params: parameters or param groups (each group may set ``lr``, ``c``, ``mu``, ``lr_scale``).
        lr: learning rate γ (≥ 0).
        c: threshold strength (≥ 0; 0 = plain SGD).
        mu: threshold growth exponent, in (0.5, 1).
        lr_scale: the step size is ``lr · lr_scale`` (> 0).
        foreach: ``torch._foreach_*`` clamps for the soft threshold (None: on non-CPU devices).
    """

    def __init__(self, params: Iterable, lr: float = 0.01, c: float = 0.0, mu: float = 0.7, *,
                 lr_scale: float = 1.0, foreach: bool | None = None):
        check_grda_hparams(lr, c, mu)
        super().__init__(params, {"lr": lr, "c": c, "mu": mu, "lr_scale": lr_scale, "foreach": foreach})

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_grda_hparams(group["lr"], group["c"], group["mu"])
        if not group["lr_scale"] > 0:
            raise ValueError(f"GRDA lr_scale must be > 0, got {group['lr_scale']}")
        for key, start in _CLOCK.items():
            group.setdefault(key, start)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One gRDA step for every group: advance its clock, then update the parameters with a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        lr = group["lr"] * group["lr_scale"]
        n = group["step"] + 1
        group["step"] = n
        group["threshold"] += threshold_increment(lr, group["c"], group["mu"], n)
        threshold = group["threshold"]
        direct, direct_grads, owners, accumulators, acc_grads = [], [], [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("GRDA does not support sparse gradients")
            state = self.state[p]
            acc = state.get("accumulator")
            if acc is None and threshold == 0.0 and p.dtype == accumulator_dtype(p):
                direct.append(p)  # w = a exactly while nothing has been thresholded
                direct_grads.append(p.grad)
                continue
            if acc is None:
                acc = state["accumulator"] = p.detach().to(accumulator_dtype(p), copy=True)
            owners.append(p)
            accumulators.append(acc)
            acc_grads.append(p.grad if p.grad.dtype == acc.dtype else p.grad.to(acc.dtype))
        if direct:
            torch._foreach_add_(direct, direct_grads, alpha=-lr)
        if owners:
            torch._foreach_add_(accumulators, acc_grads, alpha=-lr)
            foreach = group["foreach"]
            if foreach is None:
                foreach = owners[0].device.type != "cpu"
            soft_threshold_(owners, accumulators, threshold, foreach)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore groups (with their clocks) and state; accumulators keep their saved dtype."""
        super().load_state_dict(state_dict)
        saved_ids = chain.from_iterable(g["params"] for g in state_dict["param_groups"])
        params = chain.from_iterable(g["params"] for g in self.param_groups)
        for saved_id, p in zip(saved_ids, params):
            acc = state_dict["state"].get(saved_id, {}).get("accumulator")
            if acc is not None:
                self.state[p]["accumulator"] = acc.to(device=p.device, dtype=accumulator_dtype(p), copy=True)


@torch.no_grad()
def soft_threshold_(params: list[Tensor], accumulators: list[Tensor], threshold: float,
                    foreach: bool) -> None:
    """``params[i] = sign(a) · max(|a| − threshold, 0)`` for ``a = accumulators[i]`` (exact zeros).

    ``foreach``: a − clamp(a, −G, G) with multi-tensor ops (few launches on accelerators);
    otherwise one fused ``softshrink`` per tensor (one pass, fastest on CPU). Bit-identical.
    """
    if threshold == 0.0:
        torch._foreach_copy_(params, accumulators)
    elif foreach:
        clipped = torch._foreach_clamp_max(accumulators, threshold)
        torch._foreach_clamp_min_(clipped, -threshold)
        torch._foreach_copy_(params, torch._foreach_sub(accumulators, clipped))
    else:
        for p, a in zip(params, accumulators):
            if p.dtype == a.dtype:
                torch.ops.aten.softshrink.out(a, threshold, out=p)
            else:
                p.copy_(torch.nn.functional.softshrink(a, threshold))
