"""Data sets larger than memory: ``--dataset folder:<path>``, streamed from disk.

The layout is torchvision's ImageFolder: ``<path>/train/<class>/<image>`` and ``<path>/val/<class>/…``
(or ``test/``); classes are the sorted folder names of ``train``. Images are decoded by Pillow,
torchvision's own decoder for ImageFolder (JPEG, PNG, GIF, WebP, BMP; grey images as RGB;
``torchvision.io``'s decoders are deprecated since 0.29), in ``DataLoader`` worker processes
(``--data-workers``) with the standard ImageNet transforms at ``--image-size`` S: for training a
random-resized crop (scale 0.08–1) to S and a horizontal flip; for evaluation a resize of the short
side to S/0.875 and a centre crop to S; both normalised with the ImageNet channel statistics.

The order is still fixed by (seed, epoch): the batches are drawn from a ``torch.randperm`` seeded as
in :mod:`benchmark.data.batching`, and each image's augmentation from a generator seeded by (seed,
epoch, image index) — not by the worker that happens to decode it — so every method of a seed sees
the same batches, whatever the number of workers. A file that cannot be decoded is one error
naming it. The dead-unit probe decodes a fixed subset once (evaluation transform).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset as TorchDataset

from benchmark.data.containers import full_device

if TYPE_CHECKING:
    from benchmark.data.containers import Dataset

FOLDER_PREFIX = "folder:"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_IMAGE_SIZE = 224
EVAL_RESIZE = 0.875  # resize the short side to S / 0.875 before the centre crop (224 ← 256)


class ImageDecodeError(ValueError):
    """An image file that cannot be read or decoded; the message names it."""


def find_samples(root: Path, classes: Sequence[str] | None = None) -> tuple[list[tuple[str, int]], list[str]]:
    """(path, label) of every image under ``root/<class>/``, sorted, and the class names (sorted
    sub-folders of ``root`` unless given)."""
    if classes is None:
        classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    samples = []
    for label, name in enumerate(classes):
        folder = root / name
        if folder.is_dir():
            for dirpath, _, files in sorted(os.walk(folder)):
                samples += [(os.path.join(dirpath, f), label) for f in sorted(files)
                            if f.lower().endswith(IMAGE_EXTENSIONS)]
    return samples, list(classes)


class _Images(TorchDataset):
    """Decoded, transformed, normalised images of a list of samples (what the workers run)."""

    def __init__(self, samples: Sequence[tuple[str, int]], image_size: int, train: bool) -> None:
        from torchvision.transforms import v2
        self.samples, self.image_size, self.train = list(samples), image_size, train
        self.epoch_seed = 0
        if train:
            steps = [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()]
        else:
            steps = [v2.Resize(round(image_size / EVAL_RESIZE), antialias=True), v2.CenterCrop(image_size)]
        self.transform = v2.Compose(steps + [v2.ToDtype(torch.float32, scale=True),
                                             v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image
        from torchvision.transforms.v2.functional import pil_to_tensor
        path, label = self.samples[index]
        try:
            with Image.open(path) as opened:
                image = pil_to_tensor(opened.convert("RGB"))
        except Exception as err:  # noqa: BLE001 - any decoding failure names the file
            raise ImageDecodeError(f"cannot decode image {path}: {type(err).__name__}: {err}") from None
        with torch.random.fork_rng(devices=[]):  # this image's own draw, whichever process decodes it
            torch.manual_seed((self.epoch_seed * 1_000_003 + index) & 0xFFFF_FFFF_FFFF)
            return self.transform(image), label


class FolderSplit:
    """A split streamed from disk; the in-memory :class:`~benchmark.data.containers.Split`'s interface
    for the training loop (``len``, ``device``, ``to``) plus its own batching and probe."""

    def __init__(self, samples: Sequence[tuple[str, int]], image_size: int, train: bool, workers: int,
                 device: torch.device | str = "cpu") -> None:
        self.images = _Images(samples, image_size, train)
        self.workers, self.device = int(workers), full_device(device)

    def __len__(self) -> int:
        return len(self.images)

    def to(self, device: torch.device | str) -> "FolderSplit":
        """The same split delivering its batches on ``device``."""
        images = self.images
        moved = FolderSplit(images.samples, images.image_size, images.train, self.workers, device)
        return self if moved.device == self.device else moved

    def _loader(self, batches: list[list[int]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        loader = DataLoader(self.images, batch_sampler=batches, num_workers=self.workers,
                            pin_memory=self.device.type == "cuda")
        try:
            for x, y in loader:
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        except ImageDecodeError as err:  # from a worker it carries the worker's traceback: keep the line
            last = str(err).strip().splitlines()[-1]
            raise ImageDecodeError(last[last.find("cannot decode image"):]) from None

    def train_batches(self, batch_size: int, seed: int, epoch: int, order: torch.Tensor,
                      drop_last: bool = False, shard: tuple[int, int] = (0, 1)
                      ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches in ``order`` (the seeded permutation), each image augmented by (seed, epoch, index);
        with ``shard=(rank, size)`` the rows ``rank::size`` of each batch."""
        self.images.epoch_seed = int(seed) * 1_000_003 + int(epoch)
        idx = order.tolist()
        rank, size = shard
        stop = len(idx) - len(idx) % batch_size if drop_last else len(idx)
        return self._loader([idx[i:i + batch_size][rank::size] for i in range(0, stop, batch_size)])

    def eval_batches(self, batch_size: int, part: range | None = None
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Sequential batches over ``part`` of the split (all of it by default)."""
        part = range(len(self)) if part is None else part
        return self._loader([list(range(i, min(i + batch_size, part.stop)))
                             for i in range(part.start, part.stop, batch_size)])

    def stack(self, index: Sequence[int]) -> torch.Tensor:
        """The images at ``index``, evaluation-transformed, as one tensor on the split's device."""
        evaluation = _Images([self.images.samples[i] for i in index], self.images.image_size, train=False)
        return torch.stack([evaluation[i][0] for i in range(len(evaluation))]).to(self.device)


def load_folder(name: str, val_fraction: float, image_size: int | None, workers: int,
                val_indices) -> "Dataset":
    """The :class:`~benchmark.data.containers.Dataset` of ``folder:<path>`` (``name``): streamed splits,
    the validation share carved from ``train`` by ``val_indices(n, fraction)`` (the registry's fixed
    split). Raises ``ValueError`` (one line) for a missing folder, no classes or no images."""
    from benchmark.data.containers import Dataset
    root = Path(os.path.expanduser(name[len(FOLDER_PREFIX):])).resolve()
    train_dir = root / "train"
    test_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise ValueError(f"dataset {name!r}: expected {root}/train/<class>/… and {root}/val/<class>/… "
                         f"(or test/)")
    train, classes = find_samples(train_dir)
    test, _ = find_samples(test_dir, classes)
    if len(classes) < 2 or not train or not test:
        raise ValueError(f"dataset {name!r}: needs at least 2 class folders with images in train/ and "
                         f"{test_dir.name}/ (found {len(classes)} classes, {len(train)} and {len(test)} "
                         "images)")
    size = int(image_size or DEFAULT_IMAGE_SIZE)
    val = None
    if val_fraction > 0:
        kept, held = val_indices(len(train), val_fraction)
        val = FolderSplit([train[i] for i in held.tolist()], size, False, workers)
        train = [train[i] for i in kept.tolist()]
    return Dataset(name=name, train=FolderSplit(train, size, True, workers),
                   test=FolderSplit(test, size, False, workers), val=val, num_classes=len(classes),
                   in_shape=(3, size, size), augment=False,
                   source=f"image folder {root} ({len(train)} train, {len(test)} {test_dir.name} images)")
