"""Forward hooks on activation modules: dead-neuron statistics, cheaply.

Shared by the metrics (``dead_rate_static``, ``dead_rate_dynamic`` of design.md) and by methods
that watch activations (DNR). Counting is reduced on the device inside the hook — one comparison
and one sum (dynamic) or one max (static) per activation module per forward — with no host
synchronisation and no per-sample Python work.

A *unit* is a channel (dim 1) of an activation module's output: a hidden linear neuron or a conv
output channel. The dynamic DNR of Liu et al. (AP, TMLR 2023) is the share of exactly-zero
post-activation entries over the training batches of an epoch (training-mode forwards only, so
an eval-mode probe never enters it); a unit is *statically dead* when its post-activation output
is ≤ ``eps`` (default 0) for every example and every spatial position seen.

The dead-unit detector is one rule for every user (the ``dead_rate_static`` metric, the per-epoch
``dead_units`` history entry, DNR and DemP): ReLU-like activations have an exact zero, so their
*output* is watched; activations without one (LeakyReLU, SiLU/swish, ELU, GELU, …) are watched on
their *input*, the pre-activation, which is ≤ 0 exactly when the output is ≤ 0 for all of them
(so with ``eps = 0`` both readings agree; a positive ``eps`` loosens the pre-activation instead
of the slightly negative outputs these activations produce). :func:`probe_dead_units` runs the
detector on a fixed probe batch in eval mode (DemP's death check: Dufort-Labbé et al., arXiv
2403.07688).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SiLU, nn.GELU, nn.Mish, nn.Hardswish)


#: Activations with an exact zero: a unit is dead when their *output* never exceeds eps.
EXACT_ZERO_TYPES: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6)
#: DemP's death check: 3 batches of 512 training images (CIFAR-10: ⌊N/25 / 512⌋).
PROBE_BATCH = 512
PROBE_BATCHES = 3


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


def unit_signal(module: nn.Module, inputs: tuple, out: Tensor) -> Tensor:
    """What the dead-unit rule watches: the output of ReLU-like modules, else the pre-activation."""
    return out if isinstance(module, EXACT_ZERO_TYPES) else inputs[0]


class ActivationMonitor:
    """Counts zeros (dynamic) and per-unit maxima (static) of every activation module.

    Both counters are off until enabled; an enabled counter costs one small reduction per
    activation module per forward. Values stay on the device until read. Zeros are counted in
    training-mode forwards only; units are tracked by :func:`unit_signal` against ``eps``.
    """

    def __init__(self, model: nn.Module, eps: float = 0.0):
        self.modules = activation_modules(model)
        self.eps = eps
        self.count_zeros = False
        self.track_units = False
        self._nonzero: Tensor | None = None
        self._entries = 0
        self._unit_max: dict[str, Tensor] = {}
        self._handles = [m.register_forward_hook(self._hook(name)) for name, m in self.modules.items()]

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, out: Tensor) -> None:
            if self.count_zeros and module.training:  # zeros = entries - non-zeros, read only when asked
                if self._nonzero is None:
                    self._nonzero = torch.zeros((), dtype=torch.float64, device=out.device)
                self._nonzero.add_(nonzero_count(out))
                self._entries += out.numel()
            if self.track_units:
                m = _unit_max(unit_signal(module, inputs, out)).float()
                prev = self._unit_max.get(name)
                self._unit_max[name] = m if prev is None else torch.maximum(prev, m)
        return hook

    # dynamic dead-neuron rate -------------------------------------------------------------
    def reset_zeros(self) -> None:
        self._nonzero, self._entries = None, 0

    def zero_rate(self, reduce: Callable[[Tensor], Tensor] | None = None) -> float:
        """Zero entries / all entries since the last reset (NaN if nothing was seen).

        ``reduce`` (a sum over the processes of a data-parallel run) is applied to the counts —
        a float64 tensor (non-zero entries, entries) — before the rate is taken.
        """
        nonzero = 0.0 if self._nonzero is None else float(self._nonzero)
        counts = torch.tensor([nonzero, float(self._entries)], dtype=torch.float64)
        if reduce is not None:
            counts = reduce(counts)
        nonzero, entries = counts.tolist()
        return 1.0 - nonzero / entries if entries else float("nan")

    # static dead units ---------------------------------------------------------------------
    def reset_units(self) -> None:
        self._unit_max = {}

    def dead_units(self) -> dict[str, Tensor]:
        """Per activation module, a bool tensor (units,): True where the signal never exceeded eps."""
        return {name: (m <= self.eps) for name, m in self._unit_max.items()}

    def reduce_units(self, reduce: Callable[[Tensor], Tensor]) -> None:
        """Replace each module's per-unit maxima by ``reduce`` of them (a max over the processes of a
        data-parallel run, each of which saw its own share of the data)."""
        self._unit_max = {name: reduce(m.clone()) for name, m in self._unit_max.items()}

    def dead_unit_rate(self) -> float:
        """Statically dead units / all units seen (NaN if nothing was seen)."""
        count, total = dead_unit_count(self.dead_units())
        return count / total if total else float("nan")

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def dead_unit_count(dead: dict[str, Tensor]) -> tuple[int, int]:
    """(dead units, units) over the per-module bool tensors of :meth:`ActivationMonitor.dead_units`."""
    return sum(int(d.sum()) for d in dead.values()), sum(d.numel() for d in dead.values())


@torch.no_grad()
def probe_dead_units(model: nn.Module, x: Tensor, batch_size: int = PROBE_BATCH,
                     eps: float = 0.0) -> dict[str, Tensor]:
    """Dead units of ``model`` on the probe inputs ``x``: per activation module, a bool (units,).

    One eval-mode pass (BatchNorm on its running statistics, no dropout) over ``x`` in batches of
    ``batch_size``; a unit is dead when its :func:`unit_signal` is ≤ ``eps`` for every sample and
    position (DemP's logical AND across batches). The model's training mode is restored; nothing
    else changes (no gradients, no BatchNorm statistics, no random numbers).
    """
    monitor = ActivationMonitor(model, eps=eps)
    monitor.track_units = True
    was_training = model.training
    model.eval()
    try:
        for i in range(0, x.shape[0], batch_size):
            model(x[i:i + batch_size])
    finally:
        model.train(was_training)
        monitor.remove()
    return monitor.dead_units()
