"""The command line: parse → validate everything → plan the grid → execute → report.

Everything that can be checked before a run starts is checked first (see :func:`prepare` and
:mod:`benchmark.checks`): names (with the nearest valid name for a typo), finite numbers, the
device, the data set, every method's configuration on the model (built on the ``meta`` device),
and the output folder. Bad input ends with one line on stderr and exit code 2, and nothing is
written. Exit code 1 means the grid ran but some runs failed: they are stored with their reason,
and stderr says how many and why.
"""
from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import torch

import methods
from benchmark.execution.backends import Resources, worker_gpus
from benchmark.checks import (MAX_SEED, UsageError, check_init_from, check_methods, default_threads,
                              execution_problems, last_batch_problem, output_folder, oversubscription_problem,
                              procs_problems, resolve_executor, sample_cpu, unknown_name, warn_if_busy)
from benchmark.data.folder import FOLDER_PREFIX
from benchmark.data.registry import DataUnavailableError, available_datasets, load_dataset
from benchmark.execution.executors import GridSummary, StoreWriteError, execute
from benchmark.flags import build_parser, hparam_flags, listing, plugin_modules
from benchmark.plugins import PluginError, load_plugins
from benchmark.presets import PRESETS, get_preset
from benchmark.store.commands import record_command
from benchmark.store.schema import describe_reasons
from benchmark.spec import SETTINGS, RunSpec, bounds_problem, plan_grid
from benchmark.store.run_store import RunStore
from benchmark.engine.device import resolve_device
from methods.schedules import LR_SCHEDULES
from models import available_activations, available_models, is_external


#: The grid's lists, set by a flag or the preset (every other setting is a field of RunSpec).
GRID_KEYS = ("methods", "sparsities", "seeds")


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """Explicit flags over the preset over the defaults; every value validated."""
    if args.preset not in PRESETS:
        raise UsageError(unknown_name("preset", args.preset, list(PRESETS)))
    preset = get_preset(args.preset).values
    cfg = {}
    for key in GRID_KEYS:
        cfg[key] = getattr(args, key) if getattr(args, key) is not None else preset.get(key)
        if cfg[key] is None:
            raise UsageError(f"--{key} is required with preset {args.preset!r}")
    for f in SETTINGS:  # flag, else preset, else RunSpec's default
        value = getattr(args, f.name)
        cfg[f.name] = value if value is not None else preset.get(f.name, f.default)
    if args.threads is None:
        cfg["threads"] = None  # cores ÷ concurrent runs, once the executor is known (prepare)
    _validate(cfg)
    cfg["hparams"] = _method_hparams(args, cfg["methods"])
    return cfg


def _validate(cfg: dict[str, Any]) -> None:
    def choose(value: str, valid: Sequence[str], what: str) -> None:
        if value not in valid:
            raise UsageError(unknown_name(what, value, valid))
    for m in cfg["methods"]:
        try:
            methods.get_method_class(m)  # its message names the valid methods (and +ap bases)
        except ValueError as err:
            raise UsageError(str(err)) from None
    if not cfg["dataset"].startswith(FOLDER_PREFIX):  # an image folder is checked when it is read
        choose(cfg["dataset"], available_datasets(), "dataset")
    if not is_external(cfg["model"]):  # tv:, timm:, package.module:builder are checked when built
        choose(cfg["model"], available_models(), "model")
    choose(cfg["activation"], available_activations(), "activation")
    choose(cfg["lr_schedule"], LR_SCHEDULES, "LR schedule")
    for f in SETTINGS:
        problem = bounds_problem(f, cfg[f.name])
        if problem:
            raise UsageError(problem)
    for s in cfg["sparsities"]:
        if not 0.0 <= s < 1.0:
            raise UsageError(f"sparsity {s:g} is outside [0, 1)")
    for seed in cfg["seeds"]:
        if not 0 <= seed <= MAX_SEED:
            raise UsageError(f"--seeds: seed {seed} is outside [0, {MAX_SEED}]")
    if cfg["warmup_epochs"] >= cfg["epochs"]:
        raise UsageError("--warmup-epochs must be smaller than --epochs")


def _method_hparams(args: argparse.Namespace, selected: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Resolved hyperparameters of each selected method (defaults included)."""
    given = {k[3:]: v for k, v in vars(args).items() if k.startswith("hp_") and v is not None}
    owners = hparam_flags()
    for name in given:
        if not set(owners[name][2]) & set(selected):
            raise UsageError(f"--{name.replace('_', '-')} is not a hyperparameter of the selected methods "
                             f"(it belongs to: {', '.join(owners[name][2])})")
    per_method: dict[str, dict[str, Any]] = {m: {} for m in selected}
    for m in selected:
        fields = {f.name for f in methods.method_hparam_fields(m)}
        per_method[m].update({k: v for k, v in given.items() if k in fields})
    for item in args.hp:
        target, sep, value = item.partition("=")
        method, dot, name = target.partition(".")
        if not sep or not dot:
            raise UsageError(f"--hp expects METHOD.FIELD=VALUE, got {item!r}")
        if method not in per_method:
            raise UsageError(f"--hp {item!r}: method {method!r} is not among --methods")
        per_method[method][name] = value
    resolved = {}
    for m, values in per_method.items():
        try:
            resolved[m] = dataclasses.asdict(methods.make_hparams(m, **values))
        except ValueError as err:
            raise UsageError(str(err)) from None
    return resolved


class Terminated(BaseException):
    """SIGTERM (a scheduler's preemption, ``kill``): stops the grid like Ctrl-C. A BaseException, so
    that no ``except Exception`` on the way (a run's failure handling) swallows it."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if on_main_thread else None
    try:
        return _main(argv)
    except (UsageError, DataUnavailableError) as err:
        for line in str(err).splitlines():
            print(f"run_benchmarks.py: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("run_benchmarks.py: interrupted; finished runs are stored, rerun to continue", file=sys.stderr)
        return 130
    except StoreWriteError as err:
        print(f"run_benchmarks.py: error: {err}", file=sys.stderr)
        return 1
    except Terminated:
        print("run_benchmarks.py: terminated (SIGTERM); every run stopped, finished runs are stored and "
              "checkpoints kept: rerun to continue", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    try:
        load_plugins(plugin_modules(sys.argv[1:] if argv is None else argv))
    except PluginError as err:
        raise UsageError(str(err)) from None
    args = build_parser().parse_args(argv)
    if args.list:
        print(listing())
        return 0
    started = sample_cpu()
    specs, store = prepare(args)
    _record_command(store, sys.argv[1:] if argv is None else argv, specs)
    _warn_untrusted(store, [s.run_id for s in specs], "it will be computed again")
    warn_if_busy(started)
    resources = resources_of(args, specs[0].procs_per_run)
    summary = execute(specs, store, executor=args.executor, force=args.force, resources=resources,
                      show_progress=not args.no_progress)
    from benchmark.report.writer import write_reports  # pandas, scipy: only once the grid ran
    try:
        paths = write_reports(store, Path(args.out), run_ids=[s.run_id for s in specs],
                              sparsity_tolerance=args.sparsity_tolerance, plots=not args.no_plots,
                              expected_seeds=sorted({s.seed for s in specs}), reference=args.reference)
    except OSError as err:
        raise StoreWriteError(f"cannot write the reports in {args.out}: {err.strerror or err} "
                              f"({err.filename or 'a report file'}); the runs are stored: free space and "
                              "rerun") from None
    print(paths.pivot)
    print(f"\n{summary.planned} runs: {summary.completed} ran, {summary.skipped} already complete, "
          f"{summary.failed} failed")
    print(paths.written())
    if summary.failed:
        _report_failures(summary, store)
        return 1
    return 0


def resources_of(args: argparse.Namespace, procs: int) -> Resources:
    """What one run may use, from the execution flags (``procs``: processes per run)."""
    return Resources(workers=args.workers, gpus_per_run=args.gpus_per_run, cpus_per_run=args.cpus_per_run,
                     slurm_partition=args.slurm_partition, slurm_timeout_min=args.slurm_timeout_min,
                     procs_per_run=procs)


def prepare(args: argparse.Namespace) -> tuple[list[RunSpec], RunStore]:
    """Validate everything that can be checked before a run starts; the planned specs and the store.

    Order: names and numbers, the device, the data set (loaded: it must exist), every cell's method
    configuration on the model built on the ``meta`` device, and last the output folder (created
    and probed for writing), so that bad input never leaves anything behind.
    """
    try:
        cfg = resolve(args)
    except ValueError as err:
        raise UsageError(str(err)) from None
    problems = execution_problems(args)
    if not args.out.strip():
        problems.append("--out must name a folder")
    procs = cfg["procs_per_run"]
    try:
        device = resolve_device(cfg["device"])
        problems += procs_problems(procs, cfg["batch_size"], cfg["device"], device, args.gpus_per_run)
    except ValueError as err:
        problems.append(str(err))
    if problems:
        raise UsageError.of(problems)
    resolve_executor(args, device, procs)
    if args.executor == "local":
        try:
            worker_gpus(resources_of(args, procs), torch.cuda.device_count())
        except ValueError as err:
            raise UsageError(str(err)) from None
    cfg["threads"] = cfg["threads"] or default_threads(args, procs)
    crowded = oversubscription_problem(args, cfg["threads"], procs)
    if crowded:
        raise UsageError(crowded)
    try:
        dataset = load_dataset(cfg["dataset"], root=cfg["data_root"], val_fraction=cfg["val_fraction"],
                               image_size=cfg["image_size"], workers=cfg["data_workers"],
                               download=not args.no_download)
    except ValueError as err:
        raise UsageError(str(err)) from None
    uneven = last_batch_problem(len(dataset.train), cfg["batch_size"], procs)
    if uneven:
        raise UsageError(uneven)
    method_names = list(cfg["methods"])
    if not args.no_dense_reference and "dense" not in method_names:
        method_names.insert(0, "dense")
        cfg["hparams"]["dense"] = {}
    if args.reference is not None and args.reference not in method_names:
        raise UsageError(unknown_name("--reference method", args.reference, method_names))
    common = {f.name: cfg[f.name] for f in SETTINGS}
    if cfg["init_from"] is not None:  # read, named and checked once; every run starts from it
        common.update(check_init_from(RunSpec(**common), dataset).spec_fields())
    specs = plan_grid(method_names, cfg["sparsities"], cfg["seeds"], cfg["hparams"], **common)
    check_methods(specs, dataset)
    return specs, RunStore(output_folder(args.out))


def _record_command(store: RunStore, argv: Sequence[str], specs: Sequence[RunSpec]) -> None:
    """Record this grid's command line in the results folder (the HTML report shows it, also when
    rebuilt later); a folder that cannot take the record is a warning, not a reason to stop."""
    try:
        record_command(store.root, list(argv), [s.run_id for s in specs])
    except OSError as err:
        print(f"run_benchmarks.py: warning: could not record the command line in {store.root}: "
              f"{err.strerror or err}", file=sys.stderr)


def _warn_untrusted(store: RunStore, run_ids: Sequence[str], consequence: str) -> None:
    """One warning line on stderr per result file that exists but cannot be trusted."""
    for path, why in store.problems(run_ids):
        print(f"run_benchmarks.py: warning: {path}: {why}; {consequence}", file=sys.stderr)


def _report_failures(summary: GridSummary, store: RunStore) -> None:
    """How many runs failed and why, on stderr (their details are in their result.json)."""
    why = describe_reasons(Counter(f["reason"] for f in summary.failures))
    print(f"run_benchmarks.py: {summary.failed} of {summary.planned} runs failed ({why}); details in "
          f"{store.runs_dir}/<run_id>/result.json:", file=sys.stderr)
    for failure in summary.failures:
        print(f"  {failure['run_id']} {failure['run']}: {failure['error']}", file=sys.stderr)
