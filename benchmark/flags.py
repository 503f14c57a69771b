"""The CLI's flags: the parser (no abbreviations, one-line errors, the nearest flag to a typo), the
flags derived from ``RunSpec``'s settings and from every method's hyperparameters, and ``--list``.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
from typing import Any, Sequence

import methods
from benchmark.checks import UsageError, finite_float
from benchmark.data.registry import dataset_descriptions
from benchmark.execution.backends import EXECUTORS
from benchmark.presets import PRESETS
from benchmark.spec import SETTINGS
from methods.hparams import field_type
from methods.schedules import LR_SCHEDULES
from models import available_activations, model_descriptions

#: Where a name-valued setting's valid names are listed, appended to its help.
CHOICES_HELP = {"activation": f": {', '.join(available_activations())}",
                "lr_schedule": f": {', '.join(LR_SCHEDULES)}"}


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2), no abbreviated flags, and the nearest flag to a typo."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_abbrev=False, **kwargs)

    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        raise UsageError(message)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            raise UsageError(self.unknown_flag(unknown[0]))
        return parsed

    def unknown_flag(self, given: str) -> str:
        """'unknown flag --sparsity (did you mean --sparsities?)': a prefix is never taken as a flag."""
        flag = given.split("=", 1)[0]
        if not flag.startswith("-"):
            return f"unexpected argument {given!r}"
        valid = sorted(o for action in self._actions for o in action.option_strings if o.startswith("--"))
        close = difflib.get_close_matches(flag, valid, n=1) or [o for o in valid if o.startswith(flag)][:1]
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"unknown flag {flag}{hint}; --help lists every flag"


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


def plugin_modules(argv: Sequence[str]) -> list[str]:
    """The ``--plugin`` values of a command line, read before the full parser exists (the plugins
    must be imported first: the flags of their methods' hyperparameters come from the registry)."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--plugin", action="append", default=[])
    return pre.parse_known_args(list(argv))[0].plugin


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="run_benchmarks.py", description="Benchmark pruning methods on one fair harness. "
               "Grid, data and training flags default to the --preset's values (see --list).")
    p.add_argument("--list", action="store_true",
                   help="list methods, models, datasets and presets, then exit")
    p.add_argument("--preset", default="quick", help=f"grid defaults (default quick): {', '.join(PRESETS)}")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first, in the driver and in every worker: the methods, models and "
                   "data sets it registers become available (repeatable; installed packages' entry points in "
                   "the group prunebench.plugins load by themselves)")
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
    execution.add_argument("--executor", choices=("auto", *EXECUTORS), default="auto",
                           help="auto (default): local on a CPU (one worker per core, one thread each), "
                                "inline on a GPU; inline: one run after another in this process; local: "
                                "--workers worker processes on this machine; ray: a Ray cluster "
                                "(RAY_ADDRESS, else a local instance); submitit: SLURM job arrays "
                                "(submitit's local executor without SLURM)")
    execution.add_argument("--workers", type=int, default=None,
                           help="worker processes (executor local; default: one per core on a CPU, else 1)")
    execution.add_argument("--oversubscribe", action="store_true",
                           help="allow --threads × concurrent runs above the cores (much slower)")
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
    out.add_argument("--reference", default=None,
                     help="method every cell is compared with, paired by seed: Δ, 95%% CI, paired t-test, "
                     "Holm (default: gmp if in the grid, else magnitude, else dense)")
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
        kind = {"int": int, "int | None": int, "float": finite_float}.get(f.type, str)
        group.add_argument(flag, type=kind, default=None, help=help_text)


#: The model names outside the registry (:mod:`models.external`), as ``--list`` shows them.
EXTERNAL_MODEL_FORMS = {
    "tv:<name>": "any torchvision classification network, untrained (tv:resnet50, tv:mobilenet_v2, …); "
                 "ResNets get the CIFAR stem on images ≤ 64 px",
    "timm:<name>": "a timm network (pip install timm)",
    "package.module:builder": "your builder(in_shape, num_classes, activation) -> nn.Module",
}


def listing() -> str:
    """What ``--list`` prints."""
    def block(title: str, items: dict[str, str]) -> list[str]:
        width = max(map(len, items)) + 2
        return [title] + [f"  {k.ljust(width)}{v}" for k, v in items.items()] + [""]
    lines = block("methods:", methods.method_descriptions())
    lines += block("modifiers (write <base>+<modifier>):", methods.modifier_descriptions())
    lines += block("models:", {**model_descriptions(), **EXTERNAL_MODEL_FORMS})
    lines += block("datasets:", dataset_descriptions())
    lines += block("presets:", {n: p.description for n, p in PRESETS.items()})
    return "\n".join(lines).rstrip()
