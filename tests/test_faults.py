"""Faults a cluster and a careless user produce: a worker killed, SIGTERM, a busy machine, the CPU policy.

Every kill and signal is sent at a pause point the code exposes (``tests/sync.py``), never after
a sleep.
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
from pathlib import Path

import pytest
import torch

from benchmark.cli import main
from benchmark.checks import CpuSample, empty_layer_problem, others_busy_share, resolve_executor
from benchmark.store.layout import checkpoint_file
from benchmark.store import run_store
from benchmark.store.run_store import RunStore
from cli_process import GRID, finish, kill_group, start_cli, summary_counts
from models import get_model
from sync import pause_environment, paused, release


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


# ------------------------------------------------------------------------------- a killed local worker

def test_a_killed_local_worker_fails_its_run_only_and_the_grid_goes_on(tmp_path):
    out, pauses = tmp_path / "res", tmp_path / "pauses"
    args = [*GRID, "--sparsities", "0.5", "--seeds", "0", "1", "--epochs", "2", "--executor", "local",
            "--workers", "2", "--out", str(out)]
    proc = start_cli(*args, env=pause_environment(pauses, "epoch_started"))
    try:
        victim = paused(pauses, "epoch_started", count=2, proc=proc)[0]  # both workers are inside a run
        os.kill(victim, signal.SIGKILL)
        release(pauses, "epoch_started")
        code, stdout, stderr = finish(proc)
    finally:
        kill_group(proc)
    assert code == 1 and "Traceback" not in stderr, stderr
    assert summary_counts(stdout) == (6, 5, 0, 1)  # planned, ran, already complete, failed
    failed = [r for r in RunStore(out).results() if r["status"] == "failed"]
    assert [r["failure"]["reason"] for r in failed] == ["worker_died"]
    assert f"worker process {victim} exited with code -9" in failed[0]["error"]
    assert "1 of 6 runs failed (1 worker_died)" in stderr
    assert (out / "leaderboard.csv").exists() and "1/2 seeds failed (1 worker_died)" in stdout
    code, stdout, _ = finish(start_cli(*args))  # a rerun computes only the failed run
    assert code == 0 and summary_counts(stdout) == (6, 1, 5, 0)


# ------------------------------------------------------------------------------------------- SIGTERM

@pytest.mark.parametrize("executor", [["--executor", "inline"], ["--executor", "local", "--workers", "2"]])
def test_sigterm_stops_every_run_keeps_the_checkpoints_and_a_rerun_resumes(tmp_path, executor):
    out, pauses = tmp_path / "res", tmp_path / "pauses"
    args = [*GRID, "--sparsities", "0.5", "--seeds", "0", "--epochs", "4", "--checkpoint-every", "1",
            *executor, "--out", str(out)]
    running = 2 if "local" in executor else 1
    proc = start_cli(*args, env=pause_environment(pauses, "checkpoint_saved"))
    try:
        pids = paused(pauses, "checkpoint_saved", count=running, proc=proc)  # checkpoints on disk
        os.kill(proc.pid, signal.SIGTERM)  # the driver alone, as a scheduler's preemption may
        code, _, stderr = finish(proc)
        left_running = [pid for pid in pids if alive(pid)]
    finally:
        kill_group(proc)
    assert code == 143 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("run_benchmarks.py: terminated (SIGTERM)")
    assert left_running == []  # no orphan keeps training
    held = [d for d in (out / "runs").iterdir() if checkpoint_file(d).exists()]
    assert len(held) == running and list(out.glob("runs/*/lock")) == []
    code, stdout, stderr = finish(start_cli(*args))
    assert code == 0, stderr
    resumed = [RunStore(out).load(d.name) for d in held]
    assert all(r["status"] == "complete" and r["resumed_from_epoch"] == 1 for r in resumed)


# ------------------------------------------------------------------------------------ one CPU policy

@pytest.mark.parametrize("executor, workers, device, expected", [
    ("auto", None, "cpu", ("local", os.cpu_count())),
    ("auto", None, "cuda", ("inline", 1)),
    ("auto", 3, "cpu", ("local", 3)),
    ("local", None, "cpu", ("local", os.cpu_count())),
    ("inline", None, "cpu", ("inline", 1)),
    ("ray", None, "cpu", ("ray", 1)),
])
def test_auto_runs_one_worker_per_core_on_a_cpu_and_one_run_at_a_time_on_a_gpu(
        monkeypatch, executor, workers, device, expected):
    monkeypatch.setattr("benchmark.checks.cpu_cores", os.cpu_count)
    args = argparse.Namespace(executor=executor, workers=workers)
    resolve_executor(args, torch.device(device))
    assert (args.executor, args.workers) == expected


# ------------------------------------------------------------------------------------- a busy machine

def test_the_busy_share_counts_other_processes_only():
    before = CpuSample(wall_s=10.0, busy_s=100.0, own_s=5.0)
    # 1 s on 2 cores: 1.6 CPU-seconds busy, 0.5 of them this process's own -> others 1.1 of 2
    assert others_busy_share(before, CpuSample(11.0, 101.6, 5.5), cores=2) == pytest.approx(0.55)
    assert others_busy_share(before, CpuSample(11.0, 100.4, 5.5), cores=2) == 0.0  # only us
    assert others_busy_share(before, CpuSample(10.05, 101.0, 5.0), cores=2) is None  # too short


# ----------------------------------------------------------------------------- a target with no weight

def test_a_target_that_empties_a_layer_is_named_and_one_that_does_not_passes():
    with torch.device("meta"):
        model = get_model("mlp", (1, 28, 28), 10)  # 266,200 prunable weights in 3 layers
    assert empty_layer_problem(model, 0.9999) is None  # 27 kept ≥ 3 layers
    assert empty_layer_problem(model, 1 - 2 / 266200) == ("it keeps 2 of 266200 prunable weights, fewer than "
                                                          "the 3 prunable layers: some layer would have no "
                                                          "weight left")
    assert empty_layer_problem(model, 0.0) is None


# ------------------------------------------------------------------------------------------ a full disk

@pytest.mark.parametrize("failed_result_fits", [False, True])
def test_a_full_disk_stops_the_grid_with_one_line_and_a_rerun_completes_it(
        tmp_path, monkeypatch, capsys, failed_result_fits):
    """The second result meets ENOSPC (a patched write: no tmpfs can be mounted here)."""
    out = tmp_path / "res"
    args = ["--dataset", "synthetic", "--epochs", "1", "--batch-size", "64", "--no-progress", "--no-plots",
            "--executor", "inline", "--methods", "gmp", "--sparsities", "0.5", "--seeds", "0",
            "--out", str(out)]
    real_write, saved = run_store.atomic_write_text, []

    def full_disk(path, text, **kwargs):
        if saved and (not failed_result_fits or '"status": "complete"' in text):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        saved.append(path)
        return real_write(path, text, **kwargs)
    monkeypatch.setattr(run_store, "atomic_write_text", full_disk)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "No space left on device; the grid stopped" in err and "/result.json" in err
    statuses = sorted(r["status"] for r in RunStore(out).results())
    assert statuses == (["complete", "failed"] if failed_result_fits else ["complete"])
    assert all((d / "result.json").exists() for d in (out / "runs").iterdir())  # no empty run folder
    assert list(out.glob("runs/*/.*.tmp.*")) == [] and list(out.glob("runs/*/lock")) == []
    monkeypatch.setattr(run_store, "atomic_write_text", real_write)  # space freed
    assert main(args) == 0
    assert sorted(r["status"] for r in RunStore(out).results()) == ["complete", "complete"]
