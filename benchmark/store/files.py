"""Files written safely: atomic replaces (temp file, fsync, rename), JSON-safe values, UTC timestamps.

Every file prunebench writes — results, checkpoints, calibration records, reports — goes through
:func:`atomic_write_bytes`, so a reader sees the old file or the new one, never a partial one.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np


def utc_now() -> str:
    """The current UTC time as ISO 8601 with a Z, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_safe(value: Any, where: str = "result") -> Any:
    """Return ``value`` as plain JSON types: NaN/inf -> None, numpy scalars/arrays -> Python.

    Objects with a ``tolist()`` method (numpy arrays, tensors) are converted through it, so the
    store needs no torch import. Raises ``TypeError`` naming the offending key otherwise.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return json_safe(value.tolist(), where)
    raise TypeError(f"{where}: value of type {type(value).__name__} is not JSON-serialisable")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: unique temp file in the same folder, fsync, replace.

    The temp name holds the pid and a uuid, so concurrent writers never share a temp file;
    readers see either the old file or the new one, never a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}.{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_dir(folder: Path) -> None:
    """Best-effort fsync of a directory so the rename itself is durable (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
