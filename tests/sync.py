"""Synchronising a test with the processes it drives: on events the code exposes, never on sleeps.

``wait_for`` polls for an event (a file the code wrote, a pause point reached); its timeout only
bounds a hang, so it never decides a test's outcome on a fast or a slow machine. Pause points
are described in :mod:`benchmark.engine.pause_points`.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Callable, TypeVar

from benchmark.engine.pause_points import FOLDER_VARIABLE, POINTS_VARIABLE, reached_pids, release_file

T = TypeVar("T")
HANG_S = 600.0  # only a bound on a hang: an event that has not happened by then never will


def wait_for(event: Callable[[], T], what: str, proc: subprocess.Popen | None = None) -> T:
    """The first truthy value of ``event()``; fails naming ``what`` if ``proc`` exits first or on a hang."""
    deadline = time.monotonic() + HANG_S
    while True:
        value = event()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {HANG_S:.0f} s")
        time.sleep(0.01)


def pause_environment(folder: Path, *points: str) -> dict[str, str]:
    """Environment variables that make a process stop at ``points`` (see pause_points)."""
    folder.mkdir(parents=True, exist_ok=True)
    return {POINTS_VARIABLE: ",".join(points), FOLDER_VARIABLE: str(folder)}


def paused(folder: Path, point: str, count: int = 1, proc: subprocess.Popen | None = None) -> list[int]:
    """Wait until ``count`` processes are paused at ``point``; their pids."""
    return wait_for(lambda: (pids := reached_pids(folder, point)) and len(pids) >= count and pids,
                    f"{count} process(es) paused at {point}", proc)


def release(folder: Path, point: str) -> None:
    """Let every process paused (or yet to pause) at ``point`` go on."""
    release_file(folder, point).touch()


def environment_with(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}
