"""Checks the CLI makes before anything runs, and the small helpers they share.

Every failure is a :class:`UsageError`: one line on stderr, exit code 2, nothing written.
"""
from __future__ import annotations

import argparse
import difflib
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import torch

import methods
from benchmark.engine import calibration
from benchmark.data.batching import steps_per_epoch
from benchmark.data.containers import Dataset
from benchmark.spec import RunSpec
from models import get_model


class UsageError(Exception):
    """Bad input: reported as one line with exit code 2."""


def finite_float(text: str) -> float:
    """argparse type: a finite number (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def unknown_name(what: str, value: str, valid: Sequence[str]) -> str:
    """'unknown method 'grnet' (did you mean 'granet'?); choose from: …' (one line)."""
    close = difflib.get_close_matches(value, list(valid), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what} {value!r}{hint}; choose from: {', '.join(valid)}"


def cpu_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads(args: argparse.Namespace) -> int:
    """CPU threads per run: the cores shared by the concurrent runs, so they never oversubscribe.

    Measured on 2 cores (MLP, one Fashion-MNIST epoch): two processes with 2 threads each take
    ~5× longer each than one alone (OpenMP threads spin against each other); with 1 thread each,
    ~1.4× longer each, i.e. 1.4× the throughput of one run at a time.
    """
    if args.executor in ("ray", "submitit"):
        return max(1, int(args.cpus_per_run))
    concurrent = args.workers if args.executor == "local" else 1
    return max(1, cpu_cores() // concurrent)


def warn_if_loaded() -> None:
    """One warning line when the machine is already busier than its cores (timings will suffer)."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return
    cores = cpu_cores()
    if load > cores:
        print(f"run_benchmarks.py: warning: the machine's load ({load:.1f}) already exceeds its {cores} "
              f"cores; runs will be slower and their train_time_s not comparable", file=sys.stderr)


def check_methods(specs: Sequence[RunSpec], dataset: Dataset) -> None:
    """Ask every cell's method whether it can run on this model and budget (model on ``meta``)."""
    with torch.device("meta"):
        model = get_model(specs[0].model, dataset.in_shape, dataset.num_classes,
                          activation=specs[0].activation)
    n_steps = steps_per_epoch(len(dataset.train), specs[0].batch_size)
    seen: set[str] = set()
    for spec in specs:
        if spec.cell_id in seen:
            continue
        seen.add(spec.cell_id)
        cal = calibration.calibration_of(spec)
        if cal is not None:  # the runs will train at searched values: check at the search's start
            spec = calibration.with_value(spec, cal.hparam, cal.first_value)
        try:
            method = methods.get_method(spec.method, target_sparsity=spec.target_sparsity, seed=spec.seed,
                                        **spec.method_hparams)
            method.check(model, n_steps, method.plan(spec.epochs).total_epochs)
        except ValueError as err:
            raise UsageError(f"{spec.method} at sparsity {spec.target_sparsity:g}: {err}") from None


def output_folder(out: str) -> Path:
    """Create the results folder and prove it writable (one probe file, removed); UsageError otherwise."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    missing = [p for p in [path, *path.parents] if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-"):
            pass
    except OSError as err:
        for created in missing:  # leave nothing behind
            try:
                created.rmdir()
            except OSError:
                pass
        raise UsageError(f"--out {out} is not writable: {err.strerror or err}") from None
    return path
