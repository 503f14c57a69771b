"""Data sets for prunebench: the registry and in-memory tensors.

Every data set is loaded once per process into float32 tensors ``(N, C, H, W)``, normalised with
the per-channel mean/std of its (post-validation-split) training images.  A training loop moves a
:class:`Dataset` to its device once (:meth:`Dataset.to`, cached) and then draws batches with
:mod:`benchmark.data.batching`, which only gathers rows on the device.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from benchmark.data.containers import Dataset, Split
from benchmark.data.folder import FOLDER_PREFIX, load_folder
from benchmark.data.idx import find_idx_files, read_idx
from benchmark.data.synthetic import load_random_cifar, load_synthetic

__all__ = ["DataUnavailableError", "available_datasets", "dataset_descriptions", "load_dataset",
           "clear_cache", "register_dataset"]

#: Where Debian's ``dataset-fashion-mnist`` package installs the gzipped IDX files.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
#: Default download directory for torchvision data sets when no root is given.
DEFAULT_ROOT = "data"
#: Why nothing was downloaded when downloading is turned off.
DOWNLOAD_OFF = "downloading is turned off (--no-download)"
#: Seed of the validation split (independent of the run seed).
VAL_SPLIT_SEED = 0


class DataUnavailableError(RuntimeError):
    """A data set is not on disk and cannot be downloaded; the message is one line for the user."""


# --------------------------------------------------------------------------------------------------
# IDX files (MNIST / Fashion-MNIST)
# --------------------------------------------------------------------------------------------------

def _load_idx_dir(directory: str, pretty: str) -> tuple[torch.Tensor, ...]:
    """Load the train/test images and labels from a directory holding the four IDX files."""
    files = find_idx_files(directory)
    assert files is not None
    try:
        arrays = {key: read_idx(path) for key, path in files.items()}
    except (OSError, ValueError, EOFError) as exc:
        raise DataUnavailableError(f"{pretty} files in {directory} are unreadable: {exc}") from exc
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise DataUnavailableError(f"{pretty} files in {directory} are inconsistent: {part} images "
                                       f"{images.shape} vs labels {labels.shape}")
    return tuple(torch.from_numpy(arrays[k]) for k in
                 ("train_images", "train_labels", "test_images", "test_labels"))


def _idx_candidates(root: str | None, subdir: str, system_dir: str | None) -> list[str]:
    """Directories searched for IDX files, in order.

    An explicit ``root`` is the only place searched: a user who names a folder means that folder,
    and silently training on a system copy instead would record the wrong data source.
    """
    if root is not None:
        return [root, os.path.join(root, subdir, "raw")]
    return [system_dir] if system_dir is not None else []


def _download_reason(exc: BaseException) -> str:
    """A short one-line reason for a failed torchvision download."""
    return f"torchvision download failed (offline? {type(exc).__name__})"


def _load_idx_dataset(name: str, pretty: str, subdir: str, system_dir: str | None,
                      root: str | None, download: bool) -> tuple[tuple[torch.Tensor, ...], str]:
    """Find (or download) an MNIST-style data set; returns the uint8/int tensors and their source."""
    for directory in _idx_candidates(root, subdir, system_dir):
        if find_idx_files(directory) is not None:
            return _load_idx_dir(directory, pretty), directory
    if download:
        try:
            tensors = _torchvision_idx(name, root, download)
            return tensors, os.path.abspath(os.path.join(root or DEFAULT_ROOT, subdir, "raw"))
        except Exception as exc:  # any failure (offline, corrupt download, ...) means "not available"
            reason = _download_reason(exc)
    else:
        reason = DOWNLOAD_OFF
    looked = [f"{root} (and {os.path.join(root, subdir, 'raw')})"] if root else []
    looked += [system_dir] if system_dir is not None and root is None else []
    raise DataUnavailableError(_missing_message(name, pretty, looked, system_dir is not None, reason))


def _missing_message(name: str, pretty: str, looked: list[str], has_package: bool, reason: str) -> str:
    """One-line 'not found' message naming every way to get the data."""
    where = f"looked in {', '.join(looked)}" if looked else "no --data-root given"
    where += f", and {reason}"
    if has_package:
        return (f"{pretty} not found: {where}. Install it with 'apt-get install dataset-{name}' or pass "
                f"--data-root DIR with the IDX files.")
    return (f"{pretty} not found: {where}. Pass --data-root DIR with the IDX files (no Debian package "
            f"exists) or run once with network access to download it.")


def _torchvision_idx(name: str, root: str | None, download: bool) -> tuple[torch.Tensor, ...]:
    """Load MNIST / Fashion-MNIST through torchvision (downloading if allowed)."""
    from torchvision import datasets

    cls = datasets.FashionMNIST if name == "fashion-mnist" else datasets.MNIST
    train = cls(root or DEFAULT_ROOT, train=True, download=download)
    test = cls(root or DEFAULT_ROOT, train=False, download=download)
    return train.data, train.targets, test.data, test.targets


# --------------------------------------------------------------------------------------------------
# CIFAR (torchvision)
# --------------------------------------------------------------------------------------------------

def _torchvision_cifar(name: str, root: str, train: bool, download: bool) -> tuple[np.ndarray, list]:
    """Raw CIFAR arrays ``(N, 32, 32, 3) uint8`` and labels from torchvision."""
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    ds = cls(root, train=train, download=download)
    return ds.data, ds.targets


def _load_cifar(name: str, root: str | None, download: bool) -> tuple[tuple[torch.Tensor, ...], str]:
    """Load CIFAR-10/100 as uint8 ``(N, 3, 32, 32)`` tensors plus labels."""
    pretty = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}[name]
    directory = root or DEFAULT_ROOT
    try:
        parts = [_torchvision_cifar(name, directory, train, download) for train in (True, False)]
    except Exception as exc:  # any failure (offline, corrupt download, ...) means "not available"
        reason = _download_reason(exc) if download else DOWNLOAD_OFF
        raise DataUnavailableError(
            f"{pretty} not found in {os.path.abspath(directory)} and {reason}. Pass --data-root DIR "
            f"holding torchvision's {name} files or run once with network access to download it."
        ) from exc
    tensors = []
    for images, labels in parts:
        tensors.append(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2))
        tensors.append(torch.as_tensor(np.asarray(labels), dtype=torch.int64))
    return tuple(tensors), os.path.abspath(directory)


# --------------------------------------------------------------------------------------------------
# Registry, splitting, normalisation, cache
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Spec:
    description: str
    num_classes: int
    augment: bool
    loader: Callable[[str | None, bool], tuple[tuple[torch.Tensor, ...], str]]


_REGISTRY: dict[str, _Spec] = {
    "fashion-mnist": _Spec(
        "Fashion-MNIST: 60k/10k 28x28 grey clothing images, 10 classes (IDX files; suite default)",
        10, False, lambda root, dl: _load_idx_dataset("fashion-mnist", "Fashion-MNIST", "FashionMNIST",
                                                      DEBIAN_FASHION_MNIST_DIR, root, dl)),
    "mnist": _Spec(
        "MNIST: 60k/10k 28x28 grey handwritten digits, 10 classes (IDX files)",
        10, False, lambda root, dl: _load_idx_dataset("mnist", "MNIST", "MNIST", None, root, dl)),
    "cifar10": _Spec(
        "CIFAR-10: 50k/10k 32x32 RGB images, 10 classes (torchvision; random crop + flip)",
        10, True, lambda root, dl: _load_cifar("cifar10", root, dl)),
    "cifar100": _Spec(
        "CIFAR-100: 50k/10k 32x32 RGB images, 100 classes (torchvision; random crop + flip)",
        100, True, lambda root, dl: _load_cifar("cifar100", root, dl)),
    "synthetic": _Spec(
        "Synthetic: 2048/512 generated 28x28 shifted noisy prototypes, 10 classes (offline, fast)",
        10, False, lambda root, dl: load_synthetic()),
    "random-cifar": _Spec(
        "Random CIFAR-shaped data: 50k/10k 3x32x32 Gaussian images, random labels (GPU speed checks only; "
        "nothing to learn)", 10, True, lambda root, dl: load_random_cifar()),
}

_CACHE: dict[tuple[str, str | None, float], Dataset] = {}
_CACHE_LOCK = threading.Lock()


#: What a data set's loader returns: (train images, train labels, test images, test labels) — images
#: (N, C, H, W) uint8 or float, labels (N,) integers — and a one-line description of the source.
LoadedTensors = tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], str]


def register_dataset(name: str, description: str, num_classes: int,
                     loader: Callable[[str | None, bool], LoadedTensors], augment: bool = False) -> None:
    """Add an in-memory data set: ``loader(root, download)`` gives its tensors (:data:`LoadedTensors`).

    :func:`load_dataset` then splits off validation data, converts uint8 images to [0, 1] floats
    and normalises with the training images' per-channel statistics, as for the built-ins;
    ``augment`` turns on random crop + flip. A plugin calls this when imported
    (:mod:`benchmark.plugins`). Raises ``ValueError`` for an empty name, one taken by another
    loader, or fewer than two classes.
    """
    if not name or not isinstance(name, str):
        raise ValueError("a data set needs a non-empty name")
    if int(num_classes) < 2:
        raise ValueError(f"data set {name!r} needs at least 2 classes, got {num_classes}")
    if name in _REGISTRY and _REGISTRY[name].loader is not loader:
        raise ValueError(f"data set name {name!r} is already registered")
    _REGISTRY[name] = _Spec(description, int(num_classes), bool(augment), loader)


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`, sorted."""
    return sorted(_REGISTRY)


def dataset_descriptions() -> dict[str, str]:
    """One-line description of every data set, by name (sorted)."""
    return {name: _REGISTRY[name].description for name in available_datasets()}


def clear_cache() -> None:
    """Forget every loaded data set (mainly for tests)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` -> float32 ``[0, 1]``; add a channel axis to ``(N, H, W)``; float kept as is."""
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0).contiguous()
    return images.to(torch.float32).contiguous()


def _val_indices(n: int, val_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted (train, val) index tensors of a fixed seeded split of ``n`` training examples."""
    n_val = round(val_fraction * n)
    if n_val >= n or (val_fraction > 0 and n_val == 0):
        raise ValueError(f"--val-fraction {val_fraction:g} leaves an empty split: {n - n_val} of the {n} "
                         f"training examples to train on, {n_val} to validate")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(VAL_SPLIT_SEED))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def _channel_stats(x: torch.Tensor, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and population std of ``x (N, C, H, W)``, sums accumulated in float64."""
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    for start in range(0, x.shape[0], chunk):
        part = x[start:start + chunk]
        total += part.sum(dim=(0, 2, 3), dtype=torch.float64)
        total_sq += part.square().sum(dim=(0, 2, 3), dtype=torch.float64)
    count = max(x.numel() // max(x.shape[1], 1), 1)
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
    return mean, torch.where(std > 1e-12, std, torch.ones_like(std))


def _normalise(train: torch.Tensor, *others: torch.Tensor) -> None:
    """In place: standardise every tensor with the per-channel mean/std of ``train``."""
    mean, std = _channel_stats(train)
    mean, std = mean.to(torch.float32).view(1, -1, 1, 1), std.to(torch.float32).view(1, -1, 1, 1)
    for tensor in (train, *others):
        tensor.sub_(mean).div_(std)


def _build(name: str, spec: _Spec, tensors: tuple[torch.Tensor, ...], source: str,
           val_fraction: float) -> Dataset:
    """Split off validation data, convert to float and normalise; returns the Dataset."""
    train_x, train_y, test_x, test_y = tensors
    train_y, test_y = torch.as_tensor(train_y).long(), torch.as_tensor(test_y).long()
    val = None
    if val_fraction > 0:
        tr_idx, va_idx = _val_indices(len(train_y), val_fraction)
        val = (_to_float(train_x[va_idx]), train_y[va_idx])
        train_x, train_y = train_x[tr_idx], train_y[tr_idx]
    train_x, test_x = _to_float(train_x), _to_float(test_x)
    _normalise(train_x, test_x, *(() if val is None else (val[0],)))
    return Dataset(
        name=name, train=Split(train_x, train_y), test=Split(test_x, test_y),
        val=None if val is None else Split(*val), num_classes=spec.num_classes,
        in_shape=tuple(train_x.shape[1:]), augment=spec.augment, source=source,
    )


def load_dataset(name: str, root: str | os.PathLike | None = None, val_fraction: float = 0.0,
                 download: bool = True, image_size: int | None = None, workers: int = 0) -> Dataset:
    """Load a data set into memory (once per process per ``(name, root, val_fraction)``).

    ``root`` is searched first (MNIST-style IDX files directly in it or in torchvision's
    ``root/<Name>/raw``; for CIFAR torchvision's layout), then system copies, then torchvision's
    download when ``download`` is true.  A ``val_fraction`` in ``[0, 1)`` carves a fixed (seed 0)
    random validation subset out of the training set.  Raises :class:`DataUnavailableError` (one
    line) when the data cannot be found and ``ValueError`` for a bad name or fraction.
    ``folder:<path>`` is an image folder streamed from disk (:mod:`benchmark.data.folder`), decoded
    at ``image_size`` by ``workers`` processes.
    """
    if name.startswith(FOLDER_PREFIX):
        key = (name, image_size, workers, float(val_fraction))
        with _CACHE_LOCK:
            if key not in _CACHE:
                _CACHE[key] = load_folder(name, float(val_fraction), image_size, workers, _val_indices)
            return _CACHE[key]
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; choose from: {', '.join(available_datasets())}")
    val_fraction = float(val_fraction)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    resolved = None if root is None else os.path.abspath(os.path.expanduser(os.fspath(root)))
    key = (name, resolved, val_fraction)
    with _CACHE_LOCK:
        if key not in _CACHE:
            spec = _REGISTRY[name]
            tensors, source = spec.loader(resolved, download)
            _CACHE[key] = _build(name, spec, tensors, source, val_fraction)
        return _CACHE[key]
