"""Interruptions and concurrent runners: run locks, kill -9 and resume, two runners, Ctrl-C.

Every kill and interrupt happens at a pause point the code exposes (see ``tests/sync.py``), never
after a sleep.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.engine import train
from benchmark.execution import locks
from benchmark.spec import RunSpec
from benchmark.execution.backends import Local, Resources
from benchmark.store.layout import checkpoint_file, lock_file, takeover_file
from benchmark.store.run_store import RunStore
from cli_process import GRID, INLINE, finish, kill_group, start_cli, summary_counts
from sync import pause_environment, paused, release


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------------------------------------- locks

def test_a_lock_is_exclusive_and_released_only_by_its_owner(tmp_path):
    first = locks.try_lock(tmp_path / "run")
    assert first is not None and (tmp_path / "run" / "lock").exists()
    assert locks.try_lock(tmp_path / "run") is None  # held by a live process (this one)
    info = locks.read_lock(first.path)
    assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    assert "pid" in locks.describe_owner(tmp_path / "run")
    first.path.write_text(json.dumps({**info, "token": "someone-else"}))
    first.release()  # not ours any more: left alone
    assert first.path.exists()
    first.path.unlink()
    second = locks.try_lock(tmp_path / "run")
    assert second is not None
    second.release()
    assert not second.path.exists()


def _write_lock(path: Path, age_s: float = 0.0, **info) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"token": "old", "created": "2026-01-01T00:00:00Z", **info}) if info else "")
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))


@pytest.mark.parametrize("info, age_s, stale", [
    ({"host": socket.gethostname(), "pid": "DEAD"}, 0, True),        # its process is gone
    ({"host": socket.gethostname(), "pid": os.getpid()}, 0, False),  # alive here
    ({"host": socket.gethostname(), "pid": os.getpid()}, locks.STALE_AFTER_S + 5, True),  # no heartbeat
    ({"host": "elsewhere", "pid": 1}, 60, False),                    # another host, heartbeat fresh
    ({"host": "elsewhere", "pid": 1}, locks.STALE_AFTER_S + 5, True),
    ({}, 5, False),                                                  # being written right now
    ({}, locks.UNWRITTEN_GRACE_S + 5, True),                         # never written: its writer died
])
def test_stale_locks_are_detected_and_taken_over(tmp_path, info, age_s, stale):
    if info.get("pid") == "DEAD":
        info = {**info, "pid": dead_pid()}
    path = tmp_path / "run" / "lock"
    _write_lock(path, age_s, **info)
    assert locks.is_stale(path) is stale
    taken = locks.try_lock(tmp_path / "run")
    assert (taken is not None) is stale
    if taken:
        assert locks.read_lock(path)["pid"] == os.getpid()
        taken.release()
    assert not takeover_file(tmp_path / "run").exists()


def test_a_takeover_in_progress_blocks_a_second_taker(tmp_path):
    path = tmp_path / "run" / "lock"
    _write_lock(path, 0, host=socket.gethostname(), pid=dead_pid())
    takeover_file(tmp_path / "run").write_text("")  # another runner is taking it over
    assert locks.try_lock(tmp_path / "run") is None
    assert path.exists()


# ---------------------------------------------------------------------------------------------- kill -9

def test_a_grid_killed_with_sigkill_mid_run_completes_on_rerun_and_resumes_from_the_checkpoint(tmp_path):
    out = tmp_path / "res"
    args = [*GRID, *INLINE, "--sparsities", "0.5", "0.9", "--seeds", "0", "--epochs", "6",
            "--checkpoint-every", "1", "--out", str(out)]
    pauses = tmp_path / "pauses"
    proc = start_cli(*args, env=pause_environment(pauses, "checkpoint_saved"))
    try:
        paused(pauses, "checkpoint_saved", proc=proc)  # a run has written its first checkpoint
        (interrupted,) = [d for d in (out / "runs").iterdir() if checkpoint_file(d).exists()]
    finally:
        kill_group(proc)
    assert lock_file(interrupted).exists()  # a dead runner's lock stays behind...
    done_before = sum(1 for r in (out / "runs").glob("*/result.json"))

    code, stdout, stderr = finish(start_cli(*args))
    assert code == 0, stderr
    planned, ran, complete, failed = summary_counts(stdout)
    assert (planned, failed) == (5, 0) and complete == done_before and ran == planned - done_before
    assert list(out.glob("runs/*/lock")) == []  # ...and is taken over, then released
    assert list(out.glob("runs/*/.*.tmp.*")) == [] and list(out.glob("runs/*/checkpoint.pt")) == []
    store = RunStore(out)
    assert store.problems() == []
    resumed = store.load(interrupted.name)
    assert resumed["status"] == "complete" and resumed["resumed_from_epoch"] >= 1
    # bit-for-bit what an uninterrupted run computes
    straight = train.run(RunSpec.from_dict(resumed["spec"]))
    assert resumed["metrics"]["top1"] == straight["metrics"]["top1"]
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in straight["history"]]


# ---------------------------------------------------------------------------------------------- two runners

def test_two_runners_on_one_folder_share_the_grid_and_compute_each_run_once(tmp_path):
    out = tmp_path / "res"
    args = [*GRID, *INLINE, "--sparsities", "0.5", "0.8", "0.9", "--seeds", "0", "1", "--epochs", "2",
            "--out", str(out)]
    first, second = start_cli(*args), start_cli(*args)
    results = [finish(first), finish(second)]
    for code, _, stderr in results:
        assert code == 0, stderr
    counts = [summary_counts(stdout) for _, stdout, _ in results]
    planned = counts[0][0]
    assert planned == 14 and all(c[0] == planned and c[3] == 0 for c in counts)
    assert counts[0][1] + counts[1][1] == planned  # every run computed exactly once
    for code, stdout, _ in results:  # and both runners report the whole grid (the pivot: dense, 2 × 3 cells)
        lines = stdout.splitlines()
        header = next(line for line in lines if line.startswith("method "))
        assert header.split() == ["method", "50%", "80%", "90%"]
        assert sorted(line.split()[0] for line in lines if line.startswith(("gmp ", "magnitude "))) == \
            ["gmp", "magnitude"]
        assert sum(line.startswith("dense (no pruning): ") for line in lines) == 1
    store = RunStore(out)
    assert len(store.results()) == planned and store.problems() == []
    assert list(out.glob("runs/*/lock*")) == [] and list(out.glob("runs/*/.*.tmp.*")) == []
    pids = {r["environment"]["pid"] for r in store.results()}
    assert pids <= {first.pid, second.pid}


# ---------------------------------------------------------------------------------------------- Ctrl-C

def test_a_worker_hit_by_ctrl_c_while_it_starts_survives(tmp_path, monkeypatch):
    """A terminal's Ctrl-C reaches the workers too; one still importing must not die with a traceback."""
    pauses = tmp_path / "pauses"
    for name, value in pause_environment(pauses, "worker_starting").items():
        monkeypatch.setenv(name, value)  # the spawned worker inherits them
    backend = Local(RunStore(tmp_path), Resources(workers=1))
    spec = RunSpec(dataset="synthetic", model="mlp", method="gmp", target_sparsity=0.5, epochs=1,
                   batch_size=64, lr=0.1, threads=1)
    try:
        backend.submit(spec)
        (worker,) = paused(pauses, "worker_starting")  # imported, not yet ignoring Ctrl-C
        os.kill(worker, signal.SIGINT)
        release(pauses, "worker_starting")
        _, result = backend.next_result()
    finally:
        backend.abort()
    assert result["status"] == "complete", result["error"]


def test_ctrl_c_with_local_workers_exits_promptly_and_leaves_no_lock(tmp_path):
    """Both workers are held inside a run and never released: the grid can only end by the driver
    stopping them, so its exit proves it does not wait for running runs."""
    out, pauses = tmp_path / "res", tmp_path / "pauses"
    proc = start_cli(*GRID, "--sparsities", "0.5", "0.8", "0.9", "--seeds", "0", "1", "2", "--epochs", "30",
                     "--executor", "local", "--workers", "2", "--out", str(out),
                     env=pause_environment(pauses, "epoch_started"))
    try:
        paused(pauses, "epoch_started", count=2, proc=proc)  # both workers are inside a run
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        code, _, stderr = finish(proc)
    finally:
        kill_group(proc)  # nothing of it may outlive the test (paused workers never finish)
    assert code == 130 and "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert list(out.glob("runs/*/lock")) == []
