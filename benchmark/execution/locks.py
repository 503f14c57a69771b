"""One lock per run, so that several runners on one results folder never compute a run twice.

A runner claims a run by creating ``runs/<run_id>/lock`` with ``O_CREAT | O_EXCL`` (atomic on
local and NFSv3+ file systems) holding its host, pid and a random token; it releases the lock
once the run's result is stored. While held, a background thread touches every lock of this
process every :data:`HEARTBEAT_S` seconds.

A lock is *stale* — its runner is gone — when its process no longer exists on this host, or when
its heartbeat is older than :data:`STALE_AFTER_S` (a runner on another host, or a reused pid).
A stale lock is taken over under a short-lived guard file (``lock.takeover``, itself created
with ``O_EXCL``), so two runners that both find it stale cannot both take it.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.store.layout import lock_file, takeover_file

HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0
#: A lock file with no readable content yet (its creator is between create and write) is given
#: this long before it counts as stale.
UNWRITTEN_GRACE_S = 60.0


@dataclass
class RunLock:
    """A lock this process holds on one run."""

    path: Path
    token: str

    def release(self) -> None:
        """Remove the lock if it is still ours (never someone else's)."""
        _HEARTBEAT.forget(self)
        info = read_lock(self.path)
        if info is not None and info.get("token") == self.token:
            self.path.unlink(missing_ok=True)


def read_lock(path: Path) -> dict[str, Any] | None:
    """The lock's content (host, pid, token, created), or None when absent or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe_owner(run_dir: Path) -> str:
    """'pid 123 on host' for messages (or 'another runner')."""
    info = read_lock(lock_file(run_dir))
    if not info:
        return "another runner"
    return f"pid {info.get('pid')} on {info.get('host')}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale(path: Path, now: float | None = None) -> bool:
    """True when the lock at ``path`` belongs to a runner that is gone (see the module doc)."""
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return True
    info = read_lock(path)
    if info is None:
        return age > UNWRITTEN_GRACE_S
    if age > STALE_AFTER_S:
        return True
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
        return not _pid_alive(info["pid"])
    return False


def try_lock(run_dir: str | Path) -> RunLock | None:
    """Claim the run in ``run_dir`` (created if needed); None when a live runner holds it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = lock_file(run_dir)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _remove_if_stale(path):
                return None
            continue
        token = uuid.uuid4().hex
        info = {"host": socket.gethostname(), "pid": os.getpid(), "token": token,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(info, fh)
            fh.flush()
            os.fsync(fh.fileno())
        lock = RunLock(path, token)
        _HEARTBEAT.add(lock)
        return lock
    return None


def _remove_if_stale(path: Path) -> bool:
    """Remove a stale lock under the takeover guard; True when the lock is gone now."""
    guard = takeover_file(path.parent)
    try:
        fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:  # a guard left by a runner killed mid-takeover
            if time.time() - guard.stat().st_mtime > UNWRITTEN_GRACE_S:
                guard.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        return False
    os.close(fd)
    try:
        if not path.exists():
            return True
        if is_stale(path):
            path.unlink(missing_ok=True)
            return True
        return False
    finally:
        guard.unlink(missing_ok=True)


class _Heartbeat:
    """Touches every lock this process holds, so other hosts can tell a live runner from a dead one."""

    def __init__(self) -> None:
        self._locks: dict[str, RunLock] = {}
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, lock: RunLock) -> None:
        with self._mutex:
            self._locks[lock.token] = lock
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._beat, name="prunebench-lock-heartbeat",
                                                daemon=True)
                self._thread.start()

    def forget(self, lock: RunLock) -> None:
        with self._mutex:
            self._locks.pop(lock.token, None)

    def _beat(self) -> None:
        while True:
            time.sleep(HEARTBEAT_S)
            with self._mutex:
                held = list(self._locks.values())
            for lock in held:
                try:
                    os.utime(lock.path)
                except OSError:
                    pass


_HEARTBEAT = _Heartbeat()
