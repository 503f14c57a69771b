"""Files written safely: atomic replaces (temp file, fsync, rename), JSON-safe values, UTC timestamps,
and folders that stay inside the results folder.

Every file prunebench writes — results, checkpoints, calibration records, reports — goes through
:func:`atomic_write_bytes`, so a reader sees the old file or the new one, never a partial one.
Given ``inside`` (the results folder), it refuses a target whose folder resolves outside it.
:func:`first_link` finds a symbolic link on the way from the results folder to a path (the store
never reads or writes through one) and :func:`real_folder` replaces such links by real folders.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import uuid
from pathlib import Path
from typing import Any, Iterator

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


def atomic_write_bytes(path: str | Path, data: bytes, inside: str | Path | None = None) -> Path:
    """Write ``data`` to ``path`` atomically: unique temp file in the same folder, fsync, replace.

    The temp name holds the pid and a uuid, so concurrent writers never share a temp file;
    readers see either the old file or the new one, never a partial one. A symbolic link at
    ``path`` is replaced, never written through. With ``inside``, an ``OSError`` naming the path
    is raised (before any folder is created or anything written) when ``path``'s folder resolves
    outside ``inside``.
    """
    path = Path(path)
    if inside is not None:
        check_inside(path.parent, inside, target=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if inside is not None:
        check_inside(path.parent, inside, target=path)  # again: a link may have appeared meanwhile
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}.{uuid.uuid4().hex}")
    try:
        with open(tmp, "xb") as fh:  # "x": never opens an existing file or a link
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str, inside: str | Path | None = None) -> Path:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"), inside=inside)


def check_inside(path: str | Path, root: str | Path, target: str | Path | None = None) -> Path:
    """``path`` resolved (links followed); ``OSError`` naming ``target`` (default: ``path``) when
    that lies outside ``root`` resolved."""
    resolved, real_root = Path(path).resolve(), Path(root).resolve()
    if not resolved.is_relative_to(real_root):
        raise OSError(f"refusing {target or path}: {path} resolves to {resolved}, "
                      f"outside the results folder {real_root}")
    return resolved


def first_link(root: str | Path, path: str | Path) -> Path | None:
    """The first entry on the way from ``root`` (excluded) down to ``path`` (included) that is a
    symbolic link, or None. ``path`` must be spelled under ``root``; absent entries are no links."""
    root, path = Path(root), Path(path)
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            return current
    return None


def real_folder(root: str | Path, folder: str | Path) -> Path:
    """Make ``folder`` (spelled under ``root``) and every folder between them real directories and
    return ``folder``. A symbolic link on the way is removed — the link, never what it points to —
    and replaced by an empty folder; ``root`` itself is created if needed (it may be a link: the
    results folder is wherever it resolves). ``OSError`` when a file is in the way or the result
    resolves outside ``root``.
    """
    root, folder = Path(root), Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    current = root
    for part in folder.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            current.unlink()
        current.mkdir(exist_ok=True)
        if current.is_symlink() or not current.is_dir():
            raise OSError(f"{current} is not a real folder (a link or a file appeared in its place)")
    check_inside(folder, root)
    return folder


def json_objects(folder: str | Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(path, object) of every ``*.json`` file in ``folder`` holding a JSON object, by file name.

    Symbolic links (the folder or a file) are not followed; unreadable or non-object files are skipped:
    what they hold cannot be trusted, and a report must not fail on them.
    """
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return
    for path in sorted(folder.glob("*.json")):
        if path.is_symlink() or not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(data, dict):
            yield path, data


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
