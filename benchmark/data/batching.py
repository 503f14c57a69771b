"""Batches on the run's device: seeded shuffling and batched augmentation, no DataLoader.

Every batch is a row gather (``index_select``) on tensors already on the device: no worker
processes, no per-sample Python work. Shuffling and augmentation are driven by a CPU
``torch.Generator`` seeded from ``(seed, epoch)``, so every pruning method of a grid sees exactly
the same batches for a given seed, on any device.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F

from benchmark.data.containers import Split
from benchmark.data.folder import FolderSplit

__all__ = ["CROP_PAD", "eval_batches", "global_batch_size", "shard_range", "steps_per_epoch", "train_batches"]

#: Padding (pixels) of the random-crop augmentation.
CROP_PAD = 4


def steps_per_epoch(n: int, batch_size: int, drop_last: bool = False) -> int:
    """Number of batches :func:`train_batches` yields for ``n`` examples."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return n // batch_size if drop_last else -(-n // batch_size)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """CPU generator seeded deterministically from ``(seed, epoch)``."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) & 0xFFFF_FFFF_FFFF_FFFF)


def crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor,
              pad: int) -> torch.Tensor:
    """Batched random crop + horizontal flip with one ``gather``.

    ``x`` is zero-padded by ``pad`` on every side; sample ``i`` becomes the ``H x W`` window at
    ``(dy[i], dx[i])`` (each in ``[0, 2 * pad]``) of its padded image, mirrored when ``flip[i]``.
    """
    n, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (pad, pad, pad, pad)).flatten(2)                          # (n, c, hp * wp)
    ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
    rows = dy.view(n, 1) + ar_h                                                 # (n, h)
    cols = dx.view(n, 1) + torch.where(flip.view(n, 1), w - 1 - ar_w, ar_w)     # (n, w)
    flat = rows.view(n, h, 1) * (w + 2 * pad) + cols.view(n, 1, w)              # (n, h, w)
    return padded.gather(2, flat.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)


def train_batches(split: Split, batch_size: int, seed: int, epoch: int, augment: bool = False,
                  drop_last: bool = False, shard: tuple[int, int] = (0, 1)
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled ``(x, y)`` batches of one epoch, gathered on the split's device.

    The order is ``torch.randperm`` from a CPU generator seeded with ``(seed, epoch)``, so it is
    identical on every call and device.  With ``augment``, each example gets a random crop of its
    4-pixel zero-padded image plus a random horizontal flip (CIFAR recipe); the offsets and flips are
    drawn from the same generator after the permutation (the order does not depend on ``augment``).
    Padding is applied to the *normalised* images: 0 there is the channel mean of the raw
    training pixels, not black (fine for training, and it keeps padding a single batched op).
    The last partial batch is kept unless ``drop_last``. With ``shard=(rank, size)`` (one process of
    a data-parallel run) each batch is the rows ``rank::size`` of the global batch: the ``size``
    processes together see exactly the batches (and augmentations) of a one-process run.
    """
    n = len(split)
    steps = steps_per_epoch(n, batch_size, drop_last)
    gen = _epoch_generator(seed, epoch)
    order = torch.randperm(n, generator=gen)
    if isinstance(split, FolderSplit):  # streamed from disk: the same order, augmented per image
        return split.train_batches(batch_size, seed, epoch, order, drop_last, shard)
    aug = None
    if augment:
        aug = torch.stack([torch.randint(0, 2 * CROP_PAD + 1, (n,), generator=gen),
                           torch.randint(0, 2 * CROP_PAD + 1, (n,), generator=gen),
                           torch.randint(0, 2, (n,), generator=gen)]).to(split.x.device)
    return _iterate(split, order.to(split.x.device), aug, batch_size, steps, shard)


def _iterate(split: Split, order: torch.Tensor, aug: torch.Tensor | None, batch_size: int,
             steps: int, shard: tuple[int, int]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``steps`` batches following ``order`` (augmenting with ``aug`` when given), each
    reduced to this ``shard``'s rows."""
    rank, size = shard
    for step in range(steps):
        start = step * batch_size
        sl = slice(start + rank, min(start + batch_size, len(order)), size)
        idx = order[sl]
        # index_select rather than x[idx]: same result, ~3x faster on CPU.
        x = split.x.index_select(0, idx)
        if aug is not None:
            x = crop_flip(x, aug[0, sl], aug[1, sl], aug[2, sl].bool(), CROP_PAD)
        yield x, split.y.index_select(0, idx)


def global_batch_size(n: int, batch_size: int, step: int) -> int:
    """Examples in the 0-based ``step`` of an epoch of ``n`` examples (the last one may be partial)."""
    return min(batch_size, n - step * batch_size)


def shard_range(n: int, shard: tuple[int, int]) -> range:
    """The contiguous part of ``range(n)`` that process ``rank`` of ``size`` evaluates (sizes differ by
    at most one; every process gets at least one example when ``n ≥ size``)."""
    rank, size = shard
    return range(rank * n // size, (rank + 1) * n // size)


def eval_batches(split: Split, batch_size: int, shard: tuple[int, int] = (0, 1)
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Sequential ``(x, y)`` slices (views, no copies) covering every example once, last partial kept;
    with ``shard=(rank, size)`` only this process's contiguous part (:func:`shard_range`)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    part = shard_range(len(split), shard)
    if isinstance(split, FolderSplit):
        return split.eval_batches(batch_size, part)
    return ((split.x[i:min(i + batch_size, part.stop)], split.y[i:min(i + batch_size, part.stop)])
            for i in range(part.start, part.stop, batch_size))
