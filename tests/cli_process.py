"""The CLI as a separate process, as a user or a scheduler runs it: start, finish, kill, read its summary."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from sync import environment_with

ROOT = Path(__file__).resolve().parents[1]
GRID = ["--dataset", "synthetic", "--model", "mlp", "--batch-size", "64", "--no-progress", "--no-plots",
        "--threads", "1", "--methods", "gmp", "magnitude"]
INLINE = ["--executor", "inline"]


def _as_in_a_terminal() -> None:
    """Ctrl-C interrupts, as in a terminal (a CI job started in the background may ignore SIGINT,
    and an ignored signal stays ignored across exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cli(*args: str, env: dict[str, Any] | None = None) -> subprocess.Popen:
    """The CLI in its own process group (so a test can kill it and its workers like a terminal);
    ``env`` adds variables (pause points) to this process's environment."""
    env = environment_with({"OMP_NUM_THREADS": "1", **(env or {})})
    return subprocess.Popen([sys.executable, str(ROOT / "run_benchmarks.py"), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_as_in_a_terminal)


def kill_group(proc: subprocess.Popen) -> None:
    """kill -9 the CLI's whole process group (itself and its workers), if any of it is left."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def summary_counts(stdout: str) -> tuple[int, int, int, int]:
    """(planned, ran, already complete, failed) from the CLI's summary line."""
    line = next(x for x in stdout.splitlines() if " runs: " in x and " ran, " in x)
    planned, rest = line.split(" runs: ")
    ran, complete, failed = (int(part.strip().split()[0]) for part in rest.split(","))
    return int(planned), ran, complete, failed
