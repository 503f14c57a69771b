"""Forward hooks on activation modules: dead-neuron statistics, cheaply.

Shared by the metrics (``dead_rate_static``, ``dead_rate_dynamic`` of design.md) and by methods
that watch activations (DNR). Counting is reduced on the device inside the hook — one comparison
and one sum (dynamic) or one max (static) per activation module per forward — with no host
synchronisation and no per-sample Python work.

A *unit* is a channel (dim 1) of an activation module's output: a hidden linear neuron or a conv
output channel. The dynamic DNR of Liu et al. (AP, TMLR 2023) is the share of exactly-zero
post-activation entries over the training batches of an epoch; a unit is *statically dead* when
its post-activation output is ≤ 0 for every example and every spatial position seen.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SiLU, nn.GELU, nn.Mish, nn.Hardswish)


def activation_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Activation modules of ``model`` by qualified name, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, ACTIVATION_TYPES)}


def nonzero_count(t: Tensor) -> Tensor:
    """Exact number of non-zero entries of ``t``, as a 0-d float tensor on its device.

    ``|sign(t)|`` summed: one fused elementwise pass and a vectorised sum, ~10× faster on CPU than
    ``torch.count_nonzero`` for conv activations. Exact: every partial sum of 0/1 values is an
    integer below 2^24 (float32) or 2^53 (float64, used for larger tensors).
    """
    dtype = torch.float32 if t.numel() < 2 ** 24 else torch.float64
    return torch.sign(t.detach()).abs_().sum(dtype=dtype)


def _unit_max(out: Tensor) -> Tensor:
    """Max over every dim but the unit dim (1); shape (units,)."""
    if out.dim() == 1:
        return out
    dims = [0] + list(range(2, out.dim()))
    return out.detach().amax(dim=dims)


class ActivationMonitor:
    """Counts zeros (dynamic) and per-unit maxima (static) of every activation module's output.

    Both counters are off until enabled; an enabled counter costs one small reduction per
    activation module per forward. Values stay on the device until read.
    """

    def __init__(self, model: nn.Module):
        self.modules = activation_modules(model)
        self.count_zeros = False
        self.track_units = False
        self._nonzero: Tensor | None = None
        self._entries = 0
        self._unit_max: dict[str, Tensor] = {}
        self._handles = [m.register_forward_hook(self._hook(name)) for name, m in self.modules.items()]

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, out: Tensor) -> None:
            if self.count_zeros:  # zeros = entries - non-zeros, read only when asked
                if self._nonzero is None:
                    self._nonzero = torch.zeros((), dtype=torch.float64, device=out.device)
                self._nonzero.add_(nonzero_count(out))
                self._entries += out.numel()
            if self.track_units:
                m = _unit_max(out).float()
                prev = self._unit_max.get(name)
                self._unit_max[name] = m if prev is None else torch.maximum(prev, m)
        return hook

    # dynamic dead-neuron rate -------------------------------------------------------------
    def reset_zeros(self) -> None:
        self._nonzero, self._entries = None, 0

    def zero_rate(self) -> float:
        """Zero entries / all entries since the last reset (NaN if nothing was seen)."""
        if not self._entries:
            return float("nan")
        return 1.0 - float(self._nonzero) / self._entries

    # static dead units ---------------------------------------------------------------------
    def reset_units(self) -> None:
        self._unit_max = {}

    def dead_units(self) -> dict[str, Tensor]:
        """Per activation module, a bool tensor (units,) — True where the output was never > 0."""
        return {name: (m <= 0) for name, m in self._unit_max.items()}

    def dead_unit_rate(self) -> float:
        """Statically dead units / all units seen (NaN if nothing was seen)."""
        dead = self.dead_units()
        total = sum(d.numel() for d in dead.values())
        return float(sum(int(d.sum()) for d in dead.values())) / total if total else float("nan")

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
