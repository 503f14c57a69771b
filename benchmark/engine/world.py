"""The processes of one run (``--procs-per-run N``): who this process is, and the few collectives
the training loop needs to make N data-parallel processes compute one run.

A run of N processes is PyTorch's distributed data parallel (DDP): every rank holds the whole
model, takes every N-th example of each global batch, and gradients are averaged across ranks
during ``backward`` (NCCL on GPUs, gloo on CPUs). Everything a method decides from — weights,
all-reduced gradients, BatchNorm statistics (averaged after every step, :func:`sync_buffers`), the
fixed probe batch and each method's own seeded generators — is then the same on every rank, so
every rank takes the same pruning and regrowth decisions without further communication;
:func:`check_replicas` verifies it after every epoch (bitwise) and stops the run if not.
Per-rank counts (dynamic dead-neuron zeros, the training loss, test accuracy over a sharded test
set, the per-unit maxima of the static dead-unit rate) are all-reduced before they are read.

:data:`SINGLE` is the one-process world: every collective is then a no-op, and the single-process
loop computes exactly what it computed before distributed runs existed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor, nn

#: The environment variables ``torchrun`` gives each process (and :mod:`benchmark.engine.launch` too).
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class ReplicasDiverged(RuntimeError):
    """The ranks of one run no longer hold the same weights or masks (a bug, never expected)."""


@dataclass(frozen=True)
class World:
    """This process's place in its run: ``rank`` of ``size`` processes; ``local_rank`` picks its GPU."""
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that reports progress, writes checkpoints and returns the result."""
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        """(rank, size): this process takes rows ``rank::size`` of every global batch."""
        return self.rank, self.size

    def sum_(self, tensor: Tensor) -> Tensor:
        """All-reduce ``tensor`` in place (sum over ranks) and return it; unchanged in one process."""
        return self._reduce(tensor, torch.distributed.ReduceOp.SUM if self.distributed else None)

    def max_(self, tensor: Tensor) -> Tensor:
        """All-reduce ``tensor`` in place (elementwise max over ranks) and return it."""
        return self._reduce(tensor, torch.distributed.ReduceOp.MAX if self.distributed else None)

    def min_(self, tensor: Tensor) -> Tensor:
        """All-reduce ``tensor`` in place (elementwise min over ranks) and return it."""
        return self._reduce(tensor, torch.distributed.ReduceOp.MIN if self.distributed else None)

    def _reduce(self, tensor: Tensor, op) -> Tensor:
        if op is None:
            return tensor
        if tensor.device.type == "cpu" and torch.distributed.get_backend() == "nccl":  # NCCL: GPU only
            moved = tensor.to(torch.device("cuda", torch.cuda.current_device()))
            torch.distributed.all_reduce(moved, op=op)
            return tensor.copy_(moved)
        torch.distributed.all_reduce(tensor, op=op)
        return tensor


#: One process: every collective is a no-op.
SINGLE = World()


def world_from_environment() -> World:
    """The :class:`World` that ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` describe (torchrun's variables)."""
    return World(rank=int(os.environ.get("RANK", 0)), size=int(os.environ.get("WORLD_SIZE", 1)),
                 local_rank=int(os.environ.get("LOCAL_RANK", 0)))


def backend_for(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(device: torch.device, world: World) -> torch.device:
    """The device of this rank: its own GPU (``cuda:<local_rank>``, made current) or the CPU."""
    if device.type != "cuda" or not world.distributed:
        return device
    own = torch.device("cuda", world.local_rank)
    torch.cuda.set_device(own)
    return own


def wrap_data_parallel(model: nn.Module, device: torch.device, world: World) -> nn.Module:
    """``model`` as the training loop should call it on ``world``: itself in one process, else
    ``DistributedDataParallel`` (gradients averaged during backward; buffers are not broadcast
    at every forward: :func:`sync_buffers` averages them after every step instead)."""
    if not world.distributed:
        return model
    import inspect
    from torch.nn.parallel import DistributedDataParallel
    ids = [device.index] if device.type == "cuda" else None
    no_forward_sync = ("forward_sync_buffers" if "forward_sync_buffers" in
                       inspect.signature(DistributedDataParallel).parameters else "broadcast_buffers")
    return DistributedDataParallel(model, device_ids=ids, **{no_forward_sync: False})


@torch.no_grad()
def sync_buffers(model: nn.Module, world: World) -> None:
    """Average the floating-point buffers (BatchNorm running statistics) over the ranks, in place.

    Each rank's BatchNorm normalises its own share of the batch (as in standard DDP training) and
    updates its running statistics with it; averaging them after every step gives every rank the
    same statistics — those a one-process run would keep for the running mean (an exponential
    average is linear, and the shares are equal), and the mean of the shares' variances (without
    the spread between the shares' means) for the running variance. Eval-mode passes (the probe of
    DNR and DemP, evaluation) then agree on every rank. One all-reduce of one flat tensor.
    """
    if not world.distributed:
        return
    buffers = [b for b in model.buffers() if b.is_floating_point()]
    if not buffers:
        return
    flat = torch.cat([b.reshape(-1) for b in buffers])
    world.sum_(flat).div_(world.size)
    offset = 0
    for b in buffers:
        b.copy_(flat[offset:offset + b.numel()].view_as(b))
        offset += b.numel()


@torch.no_grad()
def fingerprint(tensors: list[Tensor]) -> Tensor:
    """An exact checksum per tensor (int64 on the tensors' device): the bit patterns summed, each
    weighted by its position modulo a prime, so that two tensors differing in any bit — or in where
    their values sit — almost surely get different sums. Float tensors are read as integers of
    their width; bool and integer tensors as they are."""
    sums = []
    for t in tensors:
        flat = t.detach().reshape(-1)
        if flat.is_floating_point():
            flat = flat.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[flat.element_size()])
        flat = flat.to(torch.int64)
        position = torch.arange(flat.numel(), device=flat.device) % 1_000_003 + 1
        sums.append((flat * position).sum())
    return torch.stack(sums) if sums else torch.zeros(0, dtype=torch.int64)


def check_replicas(named: dict[str, Tensor], world: World, when: str) -> None:
    """Raise :class:`ReplicasDiverged` unless every rank holds bitwise the same tensors ``named``
    (parameters, buffers, masks). Two all-reduces (min and max) of one checksum per tensor."""
    if not world.distributed or not named:
        return
    local = fingerprint(list(named.values()))
    low, high = world.min_(local.clone()), world.max_(local.clone())
    differ = [name for name, lo, hi in zip(named, low.tolist(), high.tolist()) if lo != hi]
    if differ:
        shown = ", ".join(differ[:3]) + (f" and {len(differ) - 3} more" if len(differ) > 3 else "")
        raise ReplicasDiverged(f"the {world.size} processes of this run disagree {when} on {shown}")
