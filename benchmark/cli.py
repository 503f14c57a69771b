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
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import torch

import methods
from benchmark.execution.backends import EXECUTORS, Resources, assign_gpus
from benchmark.checks import (UsageError, check_methods, default_threads, finite_float, output_folder,
                              unknown_name, warn_if_loaded)
from benchmark.data.registry import (DataUnavailableError, available_datasets, dataset_descriptions,
                                     load_dataset)
from benchmark.execution.executors import GridSummary, execute
from benchmark.presets import PRESETS, get_preset
from benchmark.store.schema import describe_reasons
from benchmark.spec import SETTINGS, RunSpec, bounds_problem, plan_grid
from benchmark.store.run_store import RunStore
from benchmark.engine.train import resolve_device
from methods.hparams import field_type
from methods.schedules import LR_SCHEDULES
from models import available_activations, available_models, model_descriptions


#: The grid's lists, set by a flag or the preset (every other setting is a field of RunSpec).
GRID_KEYS = ("methods", "sparsities", "seeds")
#: Where a name-valued setting's valid names are listed, appended to its help.
CHOICES_HELP = {"activation": f": {', '.join(available_activations())}",
                "lr_schedule": f": {', '.join(LR_SCHEDULES)}"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        raise UsageError(message)


def hparam_flags() -> dict[str, tuple[type, str, list[str]]]:
    """Every method hyperparameter field → (type, help, methods having it).

    The help ends with the default; where the methods sharing a field default differently
    (``lambda_peak``: ``dnr`` 1e-3, ``demp`` 0), it lists each method's own."""
    fields: dict[str, tuple[type, str, dict[str, Any]]] = {}
    for name in methods.available_methods():
        for f in methods.method_hparam_fields(name):
            kind = field_type(f)
            if f.name in fields:
                known_kind, _, defaults = fields[f.name]
                if known_kind is not kind:
                    raise TypeError(f"hyperparameter {f.name!r} has two types: {known_kind} and {kind}")
                defaults[name] = f.default
            else:
                help_text = f.metadata.get("help", "").replace("%", "%%")  # argparse expands % itself
                fields[f.name] = (kind, help_text, {name: f.default})
    flags: dict[str, tuple[type, str, list[str]]] = {}
    for field_name, (kind, help_text, defaults) in fields.items():
        by_value: dict[str, list[str]] = {}
        for method, value in defaults.items():
            by_value.setdefault(str(value), []).append(method)
        if len(by_value) == 1:
            default_text = f"default {next(iter(by_value))}"
        else:
            default_text = "default " + "; ".join(f"{v} for {', '.join(ms)}" for v, ms in by_value.items())
        flags[field_name] = (kind, f"{help_text} ({default_text})", list(defaults))
    return flags


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="run_benchmarks.py", description="Benchmark pruning methods on one fair harness. "
                "Grid, data and training flags default to the --preset's values (see --list).")
    p.add_argument("--list", action="store_true",
                   help="list methods, models, datasets and presets, then exit")
    p.add_argument("--preset", default="quick", help=f"grid defaults (default quick): {', '.join(PRESETS)}")
    grid = p.add_argument_group("grid")
    grid.add_argument("--methods", nargs="+", help="methods to compare (see --list)")
    grid.add_argument("--sparsities", nargs="+", type=finite_float, help="target sparsities in [0, 1)")
    grid.add_argument("--seeds", nargs="+", type=int, help="seeds (initialisation and data order)")
    grid.add_argument("--no-dense-reference", action="store_true",
                      help="do not add the dense baseline (one run per seed) to the grid")
    groups = {"data": p.add_argument_group("data and model"),
              "training": p.add_argument_group("training (shared by every method)"),
              "execution": p.add_argument_group("execution")}
    for f in SETTINGS:  # the run's settings, declared once on RunSpec
        _add_setting_flag(groups[f.metadata["group"]], f)
    data, execution = groups["data"], groups["execution"]
    data.add_argument("--no-download", action="store_true",
                      help="never try torchvision's download (fail at once when the data is not on disk)")
    execution.add_argument("--executor", choices=EXECUTORS, default="inline",
                           help="inline: one run after another in this process; local: --workers worker "
                                "processes on this machine; ray: a Ray cluster (RAY_ADDRESS, else a local "
                                "instance); submitit: SLURM job arrays (submitit's local executor without "
                                "SLURM)")
    execution.add_argument("--workers", type=int, default=1,
                           help="worker processes (executor local; default 1)")
    execution.add_argument("--gpus-per-run", type=finite_float, default=None,
                           help="GPU share per run: 0.25 packs four runs on a GPU (local: at most ⌊1/G⌋ "
                           "workers per GPU, default: as many as --workers asks; ray: default 1; "
                           "submitit: rounded up to whole GPUs per job, default 0)")
    execution.add_argument("--cpus-per-run", type=finite_float, default=1.0,
                           help="CPUs per run (executors ray and submitit; default 1)")
    execution.add_argument("--slurm-partition", help="SLURM partition (executor submitit)")
    execution.add_argument("--slurm-timeout-min", type=int, default=720,
                           help="SLURM time limit per run in minutes (executor submitit; default 720)")
    execution.add_argument("--force", action="store_true", help="re-run runs that are already complete")
    out = p.add_argument_group("output")
    out.add_argument("--out", default="results", help="results folder (default results)")
    out.add_argument("--sparsity-tolerance", type=finite_float, default=0.01,
                     help="flag runs whose measured sparsity misses the target by more than this "
                     "(default 0.01)")
    out.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    hps = p.add_argument_group("method hyperparameters (apply to every selected method that has them)")
    for name, (kind, help_text, owners) in sorted(hparam_flags().items()):
        metavar = "BOOL" if kind is bool else kind.__name__.upper()
        hps.add_argument(f"--{name.replace('_', '-')}", dest=f"hp_{name}", metavar=metavar,
                         help=f"{help_text} [{', '.join(owners)}]")
    hps.add_argument("--hp", action="append", default=[], metavar="METHOD.FIELD=VALUE",
                     help="set one method's hyperparameter (repeatable; wins over the flags above)")
    return p


def _add_setting_flag(group: Any, f: dataclasses.Field) -> None:
    """Add ``--batch-size`` for RunSpec field ``batch_size`` to an argument group: typed by the field, no
    default (resolved later: flag → preset → field default)."""
    flag = f"--{f.name.replace('_', '-')}"
    help_text = f.metadata["help"] + CHOICES_HELP.get(f.name, "")
    if f.type == "bool":
        group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    else:
        kind = {"int": int, "float": finite_float}.get(f.type, str)
        group.add_argument(flag, type=kind, default=None, help=help_text)


def listing() -> str:
    """What ``--list`` prints."""
    def block(title: str, items: dict[str, str]) -> list[str]:
        width = max(map(len, items)) + 2
        return [title] + [f"  {k.ljust(width)}{v}" for k, v in items.items()] + [""]
    lines = block("methods:", methods.method_descriptions())
    lines += block("modifiers (write <base>+<modifier>):", methods.modifier_descriptions())
    lines += block("models:", model_descriptions())
    lines += block("datasets:", dataset_descriptions())
    lines += block("presets:", {n: p.description for n, p in PRESETS.items()})
    return "\n".join(lines).rstrip()


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
    choose(cfg["dataset"], available_datasets(), "dataset")
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
    if any(seed < 0 for seed in cfg["seeds"]):
        raise UsageError("seeds must be ≥ 0")
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


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except (UsageError, DataUnavailableError) as err:
        print(f"run_benchmarks.py: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("run_benchmarks.py: interrupted; finished runs are stored, rerun to continue", file=sys.stderr)
        return 130


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        print(listing())
        return 0
    specs, store = prepare(args)
    _warn_untrusted(store, [s.run_id for s in specs], "it will be computed again")
    warn_if_loaded()
    resources = Resources(workers=args.workers, gpus_per_run=args.gpus_per_run,
                          cpus_per_run=args.cpus_per_run, slurm_partition=args.slurm_partition,
                          slurm_timeout_min=args.slurm_timeout_min)
    summary = execute(specs, store, executor=args.executor, force=args.force, resources=resources,
                      show_progress=not args.no_progress)
    from benchmark.report.writer import write_reports  # pandas, scipy: only once the grid ran
    paths = write_reports(store, Path(args.out), run_ids=[s.run_id for s in specs],
                          sparsity_tolerance=args.sparsity_tolerance, plots=not args.no_plots,
                          expected_seeds=sorted({s.seed for s in specs}))
    print(paths.table)
    print(f"\n{summary.planned} runs: {summary.completed} ran, {summary.skipped} already complete, "
          f"{summary.failed} failed")
    plots = f" and {len(paths.plots)} plots in {Path(args.out) / 'plots'}" if paths.plots else ""
    print(f"wrote {paths.csv}, {paths.markdown}{plots}")
    if summary.failed:
        _report_failures(summary, store)
        return 1
    return 0


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
    gpus = args.gpus_per_run
    if args.workers < 1 or (gpus is not None and gpus < 0) or args.cpus_per_run <= 0 \
            or args.sparsity_tolerance < 0 or args.slurm_timeout_min < 1:
        raise UsageError("--workers must be ≥ 1, --gpus-per-run ≥ 0, --cpus-per-run > 0, "
                         "--sparsity-tolerance ≥ 0 and --slurm-timeout-min ≥ 1")
    if args.executor == "local":
        try:
            assign_gpus(args.workers, torch.cuda.device_count(), gpus)
        except ValueError as err:
            raise UsageError(str(err)) from None
    if not args.out.strip():
        raise UsageError("--out must name a folder")
    try:
        resolve_device(cfg["device"])
    except ValueError as err:
        raise UsageError(str(err)) from None
    dataset = load_dataset(cfg["dataset"], root=cfg["data_root"], val_fraction=cfg["val_fraction"],
                           download=not args.no_download)
    method_names = list(cfg["methods"])
    if not args.no_dense_reference and "dense" not in method_names:
        method_names.insert(0, "dense")
        cfg["hparams"]["dense"] = {}
    common = {f.name: cfg[f.name] for f in SETTINGS}
    common["threads"] = cfg["threads"] or default_threads(args)
    specs = plan_grid(method_names, cfg["sparsities"], cfg["seeds"], cfg["hparams"], **common)
    check_methods(specs, dataset)
    return specs, RunStore(output_folder(args.out))


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
