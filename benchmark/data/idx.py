"""The IDX file format of MNIST and Fashion-MNIST (LeCun et al.): a big-endian header, then bytes.

Plain or gzipped files; only the unsigned-byte type these data sets use.
"""
from __future__ import annotations

import gzip
import math
import os

import numpy as np

__all__ = ["IDX_IMAGES_MAGIC", "IDX_LABELS_MAGIC", "IDX_STEMS", "find_idx_files", "read_idx"]

IDX_LABELS_MAGIC = 2049
IDX_IMAGES_MAGIC = 2051
IDX_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an unsigned-byte IDX file (gzipped or plain) into a uint8 array.

    Magic 2049 gives labels ``(N,)``, magic 2051 images ``(N, H, W)``; the header is big-endian.
    Raises ``ValueError`` for a bad magic number or a truncated/oversized payload.
    """
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file (only {len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in (IDX_LABELS_MAGIC, IDX_IMAGES_MAGIC):
        raise ValueError(f"{path}: not an IDX file: magic number {magic}, expected "
                         f"{IDX_LABELS_MAGIC} (labels) or {IDX_IMAGES_MAGIC} (images)")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    count = math.prod(dims)
    if len(raw) - header != count:
        raise ValueError(f"{path}: IDX payload has {len(raw) - header} bytes, header {dims} needs {count}")
    return np.frombuffer(raw, dtype=np.uint8, count=count, offset=header).reshape(dims).copy()


def find_idx_files(directory: str) -> dict[str, str] | None:
    """Paths of the four standard IDX files in ``directory`` (plain or ``.gz``), or None if incomplete."""
    found = {}
    for key, stem in IDX_STEMS.items():
        for candidate in (stem, stem + ".gz"):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                found[key] = path
                break
        else:
            return None
    return found
