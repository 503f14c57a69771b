"""Where and how a run computes: the device, mixed precision, the GPU memory layout, compilation,
and a divergence check that does not stall the GPU.

- :func:`resolve_device`: ``auto`` → CUDA when available, else CPU; anything unusable is a
  one-line ``ValueError`` before a run starts.
- :class:`Precision`: bf16 autocast on CUDA (fp16 with a gradient scaler where bf16 is not
  supported); parameters, masks and optimizer state stay fp32 (the autocast casts copies for the
  matmuls only), so masked weights stay exactly zero and gRDA's accumulators keep full precision.
  ``cpu_bf16`` turns bf16 autocast on for a CPU (tests of that property, without a GPU).
- :func:`prepare_model`: ``channels_last`` for convolutional nets on CUDA (tensor cores want
  NHWC), and ``torch.compile`` when asked.
- :func:`environment`: what a result records about where it ran — torch, threads, the device and,
  since a CPU's instruction set changes the last digits of a run, the CPU model, the SIMD level
  torch dispatches to (``cpu_capability``) and the CPU's relevant vector flags (``cpu_flags``).
- :class:`DivergenceGuard`: a non-finite loss stops the run; on a CPU the loss is read every step
  (free), on a GPU a flag is copied to pinned host memory without blocking and read once the copy
  has landed, so the step loop never waits for the GPU.
"""
from __future__ import annotations

import math
import os
import platform
import socket
from contextlib import nullcontext
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark.engine.world import SINGLE, World, backend_for, wrap_data_parallel
from benchmark.store.files import utc_now


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``ValueError`` (one line) for anything unusable.

    Checks that the device type is one this harness runs on (cpu, cuda), that a CUDA device
    exists (and its index is in range), and that a tensor can actually be allocated there.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    if device.type == "cpu" and device.index not in (None, 0):
        raise ValueError(f"device {name!r} does not exist: the CPU is one device, cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {name!r} does not exist: this machine has {count} CUDA device(s)")
        try:
            torch.empty(1, device=device)
        except RuntimeError as err:
            raise ValueError(f"device {name!r} is not usable: {str(err).splitlines()[0]}") from None
    return device


class Precision:
    """Autocast and gradient scaling: bf16 on CUDA when supported, else fp16 with a scaler.

    Parameters, masks and optimizer state stay in fp32 (autocast only casts copies for the
    matmuls and convolutions), so masked weights stay exactly zero and no method's state loses
    precision. ``cpu_bf16`` enables bf16 autocast on a CPU too (off by default: it is slower there;
    tests use it to check every method under mixed precision without a GPU).
    """

    def __init__(self, device: torch.device, enabled: bool, cpu_bf16: bool = False):
        self.enabled = enabled and (device.type == "cuda" or cpu_bf16)
        self.dtype = None
        self.scaler = None
        if self.enabled and device.type == "cuda":
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            if self.dtype == torch.float16:
                self.scaler = torch.amp.GradScaler("cuda")
        elif self.enabled:
            self.dtype = torch.bfloat16
        self.autocast = (partial(torch.autocast, device_type=device.type, dtype=self.dtype)
                         if self.enabled else nullcontext)

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            return
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)  # methods see true gradients in after_backward

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()


#: The CPU flags (``/proc/cpuinfo``) that change which kernels torch runs, in this order.
SIMD_FLAGS = ("sse4_2", "avx", "fma", "avx2", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
              "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
              "asimd", "sve", "sve2")
CPUINFO = Path("/proc/cpuinfo")


def parse_cpuinfo(text: str) -> tuple[str | None, list[str]]:
    """(CPU model, its :data:`SIMD_FLAGS` present) from ``/proc/cpuinfo``'s text (first CPU listed)."""
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "model name" and model is None:
            model = value or None
        elif key in ("flags", "Features") and not flags:  # x86, ARM
            flags = set(value.split())
    return model, [f for f in SIMD_FLAGS if f in flags]


@lru_cache(maxsize=1)
def cpu_description() -> dict[str, Any]:
    """The CPU's model, the SIMD capability torch uses on it and its :data:`SIMD_FLAGS`."""
    try:
        model, flags = parse_cpuinfo(CPUINFO.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        model, flags = None, []
    get_capability = getattr(torch.backends.cpu, "get_cpu_capability", None)
    return {"cpu_model": model or platform.processor() or platform.machine() or "unknown",
            "cpu_capability": get_capability() if get_capability is not None else None,
            "cpu_flags": flags}


def environment(device: torch.device, precision: Precision, world: World = SINGLE) -> dict[str, Any]:
    """Where and with what a run computes (stored in its result): software, device, CPU, host, and
    how many processes computed it (``procs``; their ``dist_backend`` when more than one)."""
    cpu = cpu_description()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu["cpu_model"]
    return {
        "torch": torch.__version__, "python": platform.python_version(), "device": device.type,
        "device_name": name, "amp": precision.enabled,
        "amp_dtype": str(precision.dtype).replace("torch.", "") if precision.dtype else None,
        "threads": torch.get_num_threads(), **cpu, "hostname": socket.gethostname(),
        "started_at": utc_now(), "pid": os.getpid(), "procs": world.size,
        "dist_backend": backend_for(device) if world.distributed else None,
    }


def prepare_model(model: nn.Module, device: torch.device, compile_model: bool = False,
                  world: World = SINGLE) -> nn.Module:
    """The model as the loop should call it: channels_last for conv nets on CUDA, wrapped in
    ``DistributedDataParallel`` on a multi-process ``world``, compiled if asked (after the wrap,
    as PyTorch recommends).

    Returns the module to call (the compiled wrapper, the DDP wrapper, or ``model`` itself);
    parameters, hooks and the state dict stay those of ``model``.
    """
    if device.type == "cuda" and any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model.to(memory_format=torch.channels_last)
    runner = wrap_data_parallel(model, device, world)
    return torch.compile(runner) if compile_model else runner


def uses_channels_last(model: nn.Module, device: torch.device) -> bool:
    """True when :func:`prepare_model` put ``model`` in channels_last (inputs should follow)."""
    return device.type == "cuda" and any(isinstance(m, nn.Conv2d) for m in model.modules())


class Diverged(RuntimeError):
    """The training loss became NaN or infinite: the run stops at once and is stored as failed."""

    def __init__(self, epoch: int, step: int):
        super().__init__(f"non-finite training loss at epoch {epoch}, step {step}")
        self.epoch, self.step = epoch, step

    def __reduce__(self):  # travels intact from a rank of a multi-process run to its launcher
        return type(self), (self.epoch, self.step)


class DivergenceGuard:
    """Spots a non-finite training loss at once, without making the step loop wait for a GPU.

    On a CPU the loss is read every step (a few µs). On a GPU the step of the first non-finite
    loss is kept on the device; every ``CUDA_CHECK_EVERY`` steps it is copied to pinned host memory
    without blocking, and the copy is read once its CUDA event reports it has landed (never
    waiting for it), so a diverged run stops within about ``2 × CUDA_CHECK_EVERY`` steps and names
    the exact step; :meth:`check` (end of each epoch) reads it for sure.

    On a multi-process ``world`` the ranks must stop together (a rank that stopped alone would
    leave the others waiting in a collective): every ``CUDA_CHECK_EVERY`` steps, on any device,
    the first non-finite step of any rank is all-reduced (one scalar) and read by all.
    """

    CUDA_CHECK_EVERY = 50

    def __init__(self, device: torch.device, steps_per_epoch: int, world: World = SINGLE):
        self.first_bad = torch.zeros((), dtype=torch.long, device=device)
        self.world = world
        self.every = 1 if device.type == "cpu" and not world.distributed else self.CUDA_CHECK_EVERY
        self.steps_per_epoch = max(1, steps_per_epoch)
        self._host = self._event = None
        self._new_event = torch.cuda.Event
        if device.type == "cuda" and not world.distributed:
            self._host = torch.zeros((), dtype=torch.long).pin_memory()

    def observe(self, loss: torch.Tensor, step: int) -> None:
        """Note the loss of 1-based optimizer ``step``; raise :class:`Diverged` when it is seen."""
        if self.every == 1:  # host memory: reading the value is the cheapest check
            if not math.isfinite(loss.item()):
                self._raise(step)
            return
        bad = ~torch.isfinite(loss.detach())
        self.first_bad = torch.where(bad & (self.first_bad == 0), step, self.first_bad)
        if step % self.every == 0:
            self._peek()

    def _peek(self) -> None:
        """Read the last landed copy of the flag (if any) and start a new asynchronous copy."""
        if self._host is None:  # a device without pinned copies (tests): read it directly
            self.check()
            return
        if self._event is not None and self._event.query() and int(self._host):
            self._raise(int(self._host))
        self._host.copy_(self.first_bad, non_blocking=True)
        self._event = self._new_event()
        self._event.record()

    def check(self) -> None:
        """Raise :class:`Diverged` naming the first non-finite step, if any (waits for the device;
        on a multi-process world, for the other ranks too: the earliest step of any rank)."""
        if self.world.distributed:
            never = torch.iinfo(torch.long).max
            earliest = torch.where(self.first_bad > 0, self.first_bad, never)
            step = int(self.world.min_(earliest))
            step = 0 if step == never else step
        else:
            step = int(self.first_bad)
        if step:
            self._raise(step)

    def _raise(self, step: int) -> None:
        raise Diverged(epoch=(step - 1) // self.steps_per_epoch + 1, step=step)
