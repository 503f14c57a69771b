"""The in-memory containers of a data set: a :class:`Split` (images and labels) and a :class:`Dataset`."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


def full_device(device: torch.device | str) -> torch.device:
    """Return a fully specified device (``cuda`` -> ``cuda:<current>``) so it can key a cache."""
    dev = torch.device(device)
    if dev.type != "cpu" and dev.index is None:
        dev = torch.empty(0, device=dev).device
    return dev


@dataclass(frozen=True, eq=False)
class Split:
    """One split of a data set: normalised float32 images ``x (N, C, H, W)`` and int64 labels ``y (N,)``."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.dim() != 4 or self.y.dim() != 1 or self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"Split expects x (N, C, H, W) and y (N,), got {tuple(self.x.shape)} "
                             f"and {tuple(self.y.shape)}")
        if self.x.device != self.y.device:
            raise ValueError(f"Split x and y on different devices: {self.x.device} vs {self.y.device}")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def device(self) -> torch.device:
        """Device holding the tensors."""
        return self.x.device

    def to(self, device: torch.device | str) -> "Split":
        """Return this split on ``device`` (``self`` if it is already there)."""
        dev = full_device(device)
        if self.x.device == dev:
            return self
        return Split(self.x.to(dev), self.y.to(dev))


@dataclass(frozen=True, eq=False)
class Dataset:
    """A fully loaded data set; ``val`` is carved out of the training set when requested."""

    name: str
    train: Split
    test: Split
    val: Split | None
    num_classes: int
    in_shape: tuple[int, int, int]
    augment: bool
    source: str
    _moved: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def splits(self) -> dict[str, Split]:
        """The present splits by name (``train``, ``val`` if any, ``test``)."""
        out = {"train": self.train}
        if self.val is not None:
            out["val"] = self.val
        out["test"] = self.test
        return out

    def to(self, device: torch.device | str) -> "Dataset":
        """Return the data set with all splits on ``device``; moved once and cached per device."""
        dev = full_device(device)
        if self.train.device == dev:
            return self
        moved = self._moved.get(dev)
        if moved is None:
            moved = Dataset(
                name=self.name, train=self.train.to(dev), test=self.test.to(dev),
                val=None if self.val is None else self.val.to(dev), num_classes=self.num_classes,
                in_shape=self.in_shape, augment=self.augment, source=self.source,
            )
            moved._moved[self.train.device] = self       # moving back returns the original
            self._moved[dev] = moved
        return moved
