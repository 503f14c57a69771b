"""Tests for benchmark.data: IDX parsing, loaders, splits, caching, on-device batching, augmentation."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
import torch

from benchmark.data import registry as data
from benchmark.data.batching import train_batches
from benchmark.data.containers import Dataset, Split
from benchmark.data.idx import find_idx_files, read_idx
from benchmark.data.registry import (DataUnavailableError, available_datasets, dataset_descriptions,
                                     load_dataset)

NAMES = ["cifar10", "cifar100", "fashion-mnist", "mnist", "random-cifar", "synthetic"]
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


pytestmark = pytest.mark.usefixtures("one_thread", "fresh_data_cache")


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------

def _idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array as IDX (magic 2049 for 1-D labels, 2051 for 3-D images)."""
    magic = {1: 2049, 3: 2051}[array.ndim]
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx(path, array: np.ndarray, gz: bool) -> str:
    path = str(path) + (".gz" if gz else "")
    payload = _idx_bytes(array)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(payload) if gz else payload)
    return path


def _tiny_idx_set(n_train: int = 20, n_test: int = 7, side: int = 4, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "test_labels": (np.arange(n_test) * 3 % 10).astype(np.uint8),
    }


def _write_idx_set(directory, arrays: dict[str, np.ndarray], gz: bool = True) -> None:
    os.makedirs(directory, exist_ok=True)
    for i, (key, stem) in enumerate(FILES.items()):
        _write_idx(os.path.join(directory, stem), arrays[key], gz=gz if i % 2 == 0 else not gz)


def _expected_normalised(train: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference normalisation of grey (N, H, W) uint8 images in float64."""
    tr, ot = train.astype(np.float64) / 255, other.astype(np.float64) / 255
    mean, std = tr.mean(), tr.std()
    return ((tr - mean) / std)[:, None], ((ot - mean) / std)[:, None]


def _indexed_split(n: int, c: int = 1, side: int = 3) -> Split:
    """A split whose image i is filled with the value i (so rows can be traced) and label i."""
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, c, side, side).contiguous()
    return Split(x, torch.arange(n))


# --------------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------------

def test_available_datasets_and_descriptions():
    assert available_datasets() == NAMES
    desc = dataset_descriptions()
    assert list(desc) == NAMES
    assert all(text and "\n" not in text for text in desc.values())


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError) as err:
        load_dataset("imagenet")
    assert str(err.value) == ("unknown dataset 'imagenet'; choose from: "
                              "cifar10, cifar100, fashion-mnist, mnist, random-cifar, synthetic")


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_val_fraction(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        load_dataset("synthetic", val_fraction=fraction)


# --------------------------------------------------------------------------------------------------
# IDX parser
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_exact(tmp_path, gz):
    images = np.array([[[0, 1], [2, 3]], [[255, 128], [7, 9]], [[10, 20], [30, 40]]], dtype=np.uint8)
    labels = np.array([3, 0, 9], dtype=np.uint8)
    img_path = _write_idx(tmp_path / "img-idx3-ubyte", images, gz)
    lab_path = _write_idx(tmp_path / "lab-idx1-ubyte", labels, gz)
    got_images, got_labels = read_idx(img_path), read_idx(lab_path)
    assert got_images.dtype == np.uint8 and got_images.shape == (3, 2, 2)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert torch.equal(torch.from_numpy(got_images)[1], torch.tensor([[255, 128], [7, 9]], dtype=torch.uint8))


def test_read_idx_bad_magic(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes((2050).to_bytes(4, "big") + (1).to_bytes(4, "big") + b"\x00")
    with pytest.raises(ValueError, match="magic number 2050"):
        read_idx(path)


def test_read_idx_truncated(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(_idx_bytes(np.zeros((3, 2, 2), dtype=np.uint8))[:-1])
    with pytest.raises(ValueError, match="payload"):
        read_idx(path)


# --------------------------------------------------------------------------------------------------
# MNIST-style loaders
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_fashion_mnist_from_root(tmp_path, layout):
    arrays = _tiny_idx_set()
    directory = tmp_path if layout == "flat" else tmp_path / "FashionMNIST" / "raw"
    _write_idx_set(directory, arrays)
    ds = load_dataset("fashion-mnist", root=str(tmp_path), download=False)
    assert isinstance(ds, Dataset)
    assert ds.source == str(directory)
    assert (ds.name, ds.num_classes, ds.in_shape) == ("fashion-mnist", 10, (1, 4, 4))
    assert ds.augment is False and ds.val is None
    assert ds.train.x.dtype == torch.float32 and ds.train.y.dtype == torch.int64
    exp_train, exp_test = _expected_normalised(arrays["train_images"], arrays["test_images"])
    np.testing.assert_allclose(ds.train.x.numpy(), exp_train, atol=1e-5)
    np.testing.assert_allclose(ds.test.x.numpy(), exp_test, atol=1e-5)
    np.testing.assert_array_equal(ds.train.y.numpy(), arrays["train_labels"])
    np.testing.assert_array_equal(ds.test.y.numpy(), arrays["test_labels"])


def test_mnist_from_root(tmp_path):
    arrays = _tiny_idx_set(n_train=12, n_test=5, side=3, seed=2)
    _write_idx_set(tmp_path / "MNIST" / "raw", arrays, gz=False)
    ds = load_dataset("mnist", root=tmp_path, download=False)
    assert (len(ds.train), len(ds.test), ds.in_shape) == (12, 5, (1, 3, 3))
    exp_train, _ = _expected_normalised(arrays["train_images"], arrays["test_images"])
    np.testing.assert_allclose(ds.train.x.numpy(), exp_train, atol=1e-5)


def test_corrupt_file_is_data_unavailable(tmp_path):
    _write_idx_set(tmp_path, _tiny_idx_set())
    with open(find_idx_files(str(tmp_path))["test_labels"], "wb") as fh:
        fh.write(b"not an idx file")
    with pytest.raises(DataUnavailableError, match="unreadable"):
        load_dataset("fashion-mnist", root=tmp_path, download=False)


def test_missing_fashion_mnist_message(tmp_path, monkeypatch):
    nowhere = str(tmp_path / "no-debian")
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", nowhere)
    monkeypatch.setattr(data, "DEFAULT_ROOT", str(tmp_path / "default-root"))
    with pytest.raises(DataUnavailableError) as err:
        load_dataset("fashion-mnist", download=False)
    msg = str(err.value)
    assert isinstance(err.value, RuntimeError)
    assert "\n" not in msg and "download=False" not in msg
    for part in (nowhere, "--no-download", "apt-get install dataset-fashion-mnist", "--data-root"):
        assert part in msg


def test_an_explicit_empty_root_never_falls_back_to_the_system_copy(tmp_path, monkeypatch):
    system = tmp_path / "system"
    _write_idx_set(system, _tiny_idx_set())
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", str(system))
    assert load_dataset("fashion-mnist", download=False).source == str(system)  # no root: system copy
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataUnavailableError) as err:
        load_dataset("fashion-mnist", root=str(empty), download=False)
    assert str(empty) in str(err.value) and str(system) not in str(err.value)


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100"])
def test_missing_other_datasets_message(tmp_path, name):
    with pytest.raises(DataUnavailableError) as err:
        load_dataset(name, root=str(tmp_path), download=False)
    assert "\n" not in str(err.value) and "--data-root" in str(err.value)


@pytest.mark.realdata
@pytest.mark.skipif(find_idx_files(data.DEBIAN_FASHION_MNIST_DIR) is None,
                    reason=f"Fashion-MNIST not installed in {data.DEBIAN_FASHION_MNIST_DIR} "
                           "(apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist():
    ds = load_dataset("fashion-mnist")
    assert ds.source == data.DEBIAN_FASHION_MNIST_DIR
    assert (len(ds.train), len(ds.test), ds.num_classes, ds.in_shape) == (60000, 10000, 10, (1, 28, 28))
    assert ds.train.x.shape == (60000, 1, 28, 28) and ds.train.x.dtype == torch.float32
    assert torch.bincount(ds.train.y, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(ds.test.y, minlength=10).tolist() == [1000] * 10
    assert abs(ds.train.x.mean().item()) < 1e-4
    assert abs(ds.train.x.std().item() - 1) < 1e-4


# --------------------------------------------------------------------------------------------------
# CIFAR conversion (torchvision replaced by fake arrays: no network, no files)
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_conversion(monkeypatch, tmp_path, name, classes):
    rng = np.random.default_rng(3)
    raw = {True: rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8),
           False: rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)}
    labels = {True: list(range(8)), False: [5, 6, 7, 0]}
    monkeypatch.setattr(data, "_torchvision_cifar", lambda n, root, train, dl: (raw[train], labels[train]))
    ds = load_dataset(name, root=tmp_path)
    assert (ds.num_classes, ds.in_shape, ds.source) == (classes, (3, 32, 32), str(tmp_path))
    assert ds.augment is True
    assert ds.train.x.shape == (8, 3, 32, 32) and ds.test.y.tolist() == [5, 6, 7, 0]
    train = raw[True].astype(np.float64) / 255
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    expected = ((raw[False].astype(np.float64) / 255 - mean) / std).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(ds.test.x.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(ds.train.x.mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(ds.train.x.std(dim=(0, 2, 3), correction=0).numpy(), 1, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# validation split
# --------------------------------------------------------------------------------------------------

def test_val_split_sizes_and_determinism():
    ds = load_dataset("synthetic", val_fraction=0.1)
    assert (len(ds.train), len(ds.val)) == (2048 - 205, 205)          # round(0.1 * 2048) = 205
    assert ds.train.x.shape[1:] == ds.val.x.shape[1:] == (1, 28, 28)
    assert abs(ds.train.x.mean().item()) < 1e-4                        # stats of the reduced train set
    data.clear_cache()
    again = load_dataset("synthetic", val_fraction=0.1)
    assert torch.equal(ds.val.x, again.val.x) and torch.equal(ds.train.y, again.train.y)


def test_val_split_disjoint(tmp_path):
    n = 20
    arrays = _tiny_idx_set(n_train=n)
    arrays["train_images"] = np.repeat(np.arange(0, 10 * n, 10, dtype=np.uint8), 16).reshape(n, 4, 4)
    _write_idx_set(tmp_path, arrays)
    ds = load_dataset("fashion-mnist", root=tmp_path, val_fraction=0.25, download=False)
    assert (len(ds.train), len(ds.val)) == (15, 5)
    train_ids, val_ids = ds.train.x[:, 0, 0, 0], ds.val.x[:, 0, 0, 0]   # same affine map for both
    assert not torch.isin(val_ids, train_ids).any()
    assert torch.cat([train_ids, val_ids]).unique().numel() == n
    rank = {v: i for i, v in enumerate(sorted(torch.cat([train_ids, val_ids]).tolist()))}
    assert [arrays["train_labels"][rank[v]] for v in val_ids.tolist()] == ds.val.y.tolist()


# --------------------------------------------------------------------------------------------------
# caching and devices
# --------------------------------------------------------------------------------------------------

def test_load_cache_identity(tmp_path):
    ds = load_dataset("synthetic")
    assert load_dataset("synthetic") is ds
    assert load_dataset("synthetic", val_fraction=0.2) is not ds


def test_dataset_to_cached():
    ds = load_dataset("synthetic", val_fraction=0.1)
    assert ds.to("cpu") is ds
    meta = ds.to("meta")                        # a second device that exists without a GPU
    assert meta is not ds and ds.to(torch.device("meta")) is meta and meta.to("cpu") is ds
    assert meta.train.x.device.type == "meta" and meta.val.y.device.type == "meta"
    assert (meta.name, meta.in_shape, len(meta.train)) == (ds.name, ds.in_shape, len(ds.train))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_match_cpu():
    split = _indexed_split(300, c=3, side=8)
    gpu = split.to("cuda")
    for (xc, yc), (xg, yg) in zip(train_batches(split, 64, 1, 2, augment=True),
                                  train_batches(gpu, 64, 1, 2, augment=True)):
        assert xg.is_cuda and torch.equal(xc, xg.cpu()) and torch.equal(yc, yg.cpu())
