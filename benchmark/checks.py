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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

import methods
from benchmark.engine import calibration
from benchmark.engine.init_from import InitFromError, InitialWeights, fit_problem, read_weights
from benchmark.data.batching import steps_per_epoch
from benchmark.data.containers import Dataset
from benchmark.execution.backends import missing_package
from benchmark.spec import RunSpec
from methods.activations import ACTIVATION_TYPES, activation_modules
from methods.masks import all_prunable_weights, target_prune_count
from models import get_model


class UsageError(Exception):
    """Bad input: reported with exit code 2, one line per problem (the message's lines)."""

    @classmethod
    def of(cls, problems: Sequence[str]) -> "UsageError":
        return cls("\n".join(problems))


#: Executors whose runs share this machine's cores (the others run on a cluster's nodes).
LOCAL_EXECUTORS = ("inline", "local")
#: Other processes using more than this share of the cores make the machine busy.
BUSY_SHARE = 0.5
#: Shortest window (seconds) over which the busy share is measured.
BUSY_WINDOW_S = 0.1
#: Seeds seed torch's and numpy's generators, whose seeds are at most 2**32 - 1.
MAX_SEED = 2**32 - 1


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


def resolve_executor(args: argparse.Namespace, device: torch.device, procs: int = 1) -> None:
    """Turn ``--executor auto`` and an unset ``--workers`` into what runs (in place).

    One policy for every entry point, so that the plain CLI and ``make bench`` share their runs:
    on a CPU, one worker process per core with one thread each (1.8× the throughput of one
    two-thread run at a time on the quick grid) — one per ``procs`` cores when each run is
    ``procs`` processes; on a GPU, one run at a time in this process.
    """
    if args.executor == "auto":
        args.executor = "local" if device.type == "cpu" else "inline"
    if args.workers is None:
        local_cpu = args.executor == "local" and device.type == "cpu"
        args.workers = max(1, cpu_cores() // procs) if local_cpu else 1


def execution_problems(args: argparse.Namespace) -> list[str]:
    """One line per execution flag that is wrong (before ``--executor auto`` is resolved)."""
    problems = []
    local = args.executor in LOCAL_EXECUTORS or args.executor == "auto"
    if args.workers is not None and args.workers < 1:
        problems.append(f"--workers must be ≥ 1, got {args.workers}")
    elif args.workers is not None and args.executor not in ("local", "auto"):
        problems.append(f"--workers applies to --executor local, not {args.executor}")
    if args.gpus_per_run is not None and args.gpus_per_run <= 0:
        problems.append(f"--gpus-per-run must be > 0, got {args.gpus_per_run:g}")
    elif args.gpus_per_run is not None and local and torch.cuda.device_count() == 0:
        problems.append("--gpus-per-run needs a GPU, and this machine has none (CUDA is not available)")
    if args.cpus_per_run <= 0:
        problems.append(f"--cpus-per-run must be > 0, got {args.cpus_per_run:g}")
    if args.sparsity_tolerance < 0:
        problems.append(f"--sparsity-tolerance must be ≥ 0, got {args.sparsity_tolerance:g}")
    if args.slurm_timeout_min < 1:
        problems.append(f"--slurm-timeout-min must be ≥ 1, got {args.slurm_timeout_min}")
    missing = missing_package(args.executor)
    if missing:
        problems.append(missing)
    return problems


def oversubscription_problem(args: argparse.Namespace, threads: int, procs: int = 1) -> str | None:
    """Why ``threads`` per process on ``args.workers`` concurrent runs of ``procs`` processes would
    oversubscribe this machine's cores (None when it does not, when asked for with
    ``--oversubscribe``, or on a cluster)."""
    if args.oversubscribe or args.executor not in LOCAL_EXECUTORS:
        return None
    concurrent = args.workers if args.executor == "local" else 1
    cores = cpu_cores()
    if threads * concurrent * procs <= cores:
        return None
    each = f" × {procs} processes" if procs > 1 else ""
    return (f"--threads {threads} × {concurrent} concurrent run(s){each} is more than this machine's {cores} "
            f"cores (every run would be several times slower); lower it or pass --oversubscribe")


def default_threads(args: argparse.Namespace, procs: int = 1) -> int:
    """CPU threads per process: the cores shared by the concurrent runs (and their ``procs`` processes
    each), so they never oversubscribe.

    Measured on 2 cores (MLP, one Fashion-MNIST epoch): two processes with 2 threads each take
    ~5× longer each than one alone (OpenMP threads spin against each other); with 1 thread each,
    ~1.4× longer each, i.e. 1.4× the throughput of one run at a time.
    """
    if args.executor in ("ray", "submitit"):
        return max(1, int(args.cpus_per_run))
    concurrent = args.workers if args.executor == "local" else 1
    return max(1, cpu_cores() // (concurrent * procs))


def procs_problems(procs: int, batch_size: int, device_name: str, device: torch.device,
                   gpus_per_run: float | None = None) -> list[str]:
    """Why runs of ``procs`` processes cannot run as configured (empty when they can, or for 1)."""
    if procs == 1:
        return []
    problems = []
    if gpus_per_run is not None:
        problems.append("--gpus-per-run shares a GPU between one-process runs; with --procs-per-run each "
                        "process has a whole GPU")
    if not torch.distributed.is_available():
        problems.append("--procs-per-run needs torch.distributed, which this PyTorch build lacks")
    if device.type == "cuda" and ":" in device_name:
        problems.append(f"--procs-per-run {procs} gives each process its own GPU: use --device auto or cuda, "
                        f"not {device_name}")
    elif device.type == "cuda" and procs > torch.cuda.device_count():
        problems.append(f"--procs-per-run {procs} needs {procs} GPUs, one per process; this machine has "
                        f"{torch.cuda.device_count()}")
    if batch_size < procs:
        problems.append(f"--batch-size {batch_size} is smaller than --procs-per-run {procs}: every process "
                        "takes a share of each batch")
    return problems


def last_batch_problem(examples: int, batch_size: int, procs: int) -> str | None:
    """Why the last batch of an epoch cannot be shared by ``procs`` processes (None when it can)."""
    last = examples % batch_size
    if procs == 1 or last == 0 or last >= procs:
        return None
    return (f"the last batch of an epoch has {last} example(s) ({examples} % --batch-size {batch_size}), "
            f"fewer than --procs-per-run {procs}: every process needs a share; choose another batch size")


@dataclass(frozen=True)
class CpuSample:
    """Seconds at one moment: wall clock, busy time of all CPUs, CPU time of this process."""
    wall_s: float
    busy_s: float
    own_s: float


def sample_cpu() -> CpuSample | None:
    """The machine's busy CPU time (``/proc/stat``) and this process's; None where unavailable."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    own = os.times()
    return CpuSample(time.monotonic(), (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK"),
                     own.user + own.system)


def others_busy_share(before: CpuSample, after: CpuSample, cores: int) -> float | None:
    """Share of the cores other processes kept busy between two samples (None if too short to tell)."""
    wall = after.wall_s - before.wall_s
    if wall < BUSY_WINDOW_S:
        return None
    others = (after.busy_s - before.busy_s) - (after.own_s - before.own_s)
    return max(0.0, others) / (wall * cores)


def warn_if_busy(since: CpuSample | None) -> None:
    """One warning line when other processes kept more than half the cores busy since ``since``
    (measured now, not the load average, which still counts the previous command's runs)."""
    now = sample_cpu()
    share = others_busy_share(since, now, cpu_cores()) if since and now else None
    if share is not None and share > BUSY_SHARE:
        print(f"run_benchmarks.py: warning: other processes keep {100 * share:.0f}% of this machine's "
              f"{cpu_cores()} cores busy; runs will be slower and their train_time_s not comparable",
              file=sys.stderr)


def meta_model(spec: RunSpec, dataset: Dataset) -> torch.nn.Module:
    """The grid's network on the ``meta`` device (no memory, no compute), checked before any run: it
    builds, takes the data's input shape, and has activation modules for the dead-neuron statistics.
    Raises :class:`UsageError` naming the model and what fails."""
    name, shape = spec.model, "×".join(map(str, dataset.in_shape))
    try:
        with torch.device("meta"):
            model = get_model(name, dataset.in_shape, dataset.num_classes, activation=spec.activation)
    except ValueError as err:
        raise UsageError(str(err)) from None
    try:
        with torch.no_grad():
            model(torch.empty(2, *dataset.in_shape, device="meta"))
    except Exception as err:  # noqa: BLE001 - any failure of a user's network is one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"model {name!r} cannot take {shape} inputs of {dataset.name}: {first}") from None
    if not activation_modules(model):
        raise UsageError(f"model {name!r} has no activation module the dead-neuron statistics can watch "
                         f"(one of {', '.join(t.__name__ for t in ACTIVATION_TYPES)})")
    return model


def check_init_from(spec: RunSpec, dataset: Dataset) -> InitialWeights:
    """Read ``spec.init_from``'s weights once (the file exists, is readable and holds a state_dict;
    ``tv-weights:NAME`` resolves and can be fetched), name them, and check their keys and shapes
    against the grid's model on ``meta``; UsageError naming what does not fit."""
    try:
        weights = read_weights(spec.init_from or "", spec.model)
    except InitFromError as err:
        raise UsageError(str(err)) from None
    problem = fit_problem(meta_model(spec, dataset).state_dict(), weights.state_dict)
    if problem:
        raise UsageError(f"--init-from {weights.source} does not fit model {spec.model} on {dataset.name}: "
                         f"{problem}")
    return weights


def check_methods(specs: Sequence[RunSpec], dataset: Dataset) -> None:
    """Ask every cell's method whether it can run on this model and budget (model on ``meta``)."""
    model = meta_model(specs[0], dataset)
    n_steps = steps_per_epoch(len(dataset.train), specs[0].batch_size)
    seen: set[str] = set()
    for spec in specs:
        if spec.cell_id in seen:
            continue
        seen.add(spec.cell_id)
        empty = empty_layer_problem(model, spec.target_sparsity)
        if empty:
            raise UsageError(f"{spec.method} at sparsity {spec.target_sparsity:.10g}: {empty}")
        cal = calibration.calibration_of(spec)
        if cal is not None:  # the runs will train at searched values: check at the search's start
            spec = calibration.with_value(spec, cal.hparam, cal.first_value)
        try:
            method = methods.get_method(spec.method, target_sparsity=spec.target_sparsity, seed=spec.seed,
                                        **spec.method_hparams)
            method.check(model, n_steps, method.plan(spec.epochs).total_epochs)
        except ValueError as err:
            raise UsageError(f"{spec.method} at sparsity {spec.target_sparsity:g}: {err}") from None


def empty_layer_problem(model: torch.nn.Module, sparsity: float) -> str | None:
    """Why ``sparsity`` must leave some prunable tensor without a single weight (None when it need
    not): fewer weights kept over all prunable tensors than there are tensors. A layer with no
    weight passes nothing on, whatever the method."""
    weights = all_prunable_weights(model)
    total = sum(w.numel() for w in weights.values())
    kept = total - target_prune_count(sparsity, total, total)
    if sparsity == 0 or kept >= len(weights):
        return None
    return (f"it keeps {kept} of {total} prunable weights, fewer than the {len(weights)} prunable "
            f"layers: some layer would have no weight left")


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
