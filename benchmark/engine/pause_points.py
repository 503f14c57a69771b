"""Test-only pause points: named places where a process stops until a test releases it.

A test that kills or interrupts a runner must act at a known moment — "a worker is training",
"a checkpoint is on disk" — and wait for that moment as an event, never for a ``sleep`` to be
long enough (the same suite runs on fast, slow and loaded machines). With
``PRUNEBENCH_PAUSE_AT=<point>[,<point>…]`` and ``PRUNEBENCH_PAUSE_DIR=<folder>`` in its environment,
a process reaching a listed point writes ``<folder>/<point>.<pid>.reached`` and waits until
``<folder>/<point>.release`` exists. Without them (every real run) a pause point costs one
environment lookup.

The points: ``worker_starting`` (a local worker process, before it ignores Ctrl-C),
``epoch_started`` (a run, before each training epoch) and ``checkpoint_saved`` (a run, right after
a checkpoint is written).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

POINTS_VARIABLE = "PRUNEBENCH_PAUSE_AT"
FOLDER_VARIABLE = "PRUNEBENCH_PAUSE_DIR"
POINTS = ("worker_starting", "epoch_started", "checkpoint_saved")
POLL_S = 0.01


def pause_point(name: str) -> None:
    """Stop here while ``name`` is a requested pause point and the test has not released it."""
    requested = os.environ.get(POINTS_VARIABLE)
    if not requested or name not in requested.split(","):
        return
    folder = Path(os.environ[FOLDER_VARIABLE])
    reached = folder / f"{name}.{os.getpid()}.reached"
    partial = reached.with_name(f".{reached.name}.tmp")
    partial.write_text(str(os.getpid()))
    partial.replace(reached)  # the test sees the file complete or not at all
    release = release_file(folder, name)
    while not release.exists():
        time.sleep(POLL_S)


def release_file(folder: str | Path, name: str) -> Path:
    """The file whose existence releases every process paused at ``name``."""
    return Path(folder) / f"{name}.release"


def reached_pids(folder: str | Path, name: str) -> list[int]:
    """Pids of the processes that reached ``name`` (paused there unless released), in arrival order."""
    files = sorted(Path(folder).glob(f"{name}.*.reached"), key=lambda p: p.stat().st_mtime_ns)
    return [int(p.name.split(".")[1]) for p in files]


def forwarded_environment() -> dict[str, str]:
    """The pause-point variables set in this process, for workers that do not inherit its environment
    (Ray tasks); empty in every real run."""
    return {k: os.environ[k] for k in (POINTS_VARIABLE, FOLDER_VARIABLE) if k in os.environ}
