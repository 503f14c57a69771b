"""Leaderboard (mean and 95% CI over seeds), Markdown table and report files, read from the store.

Reports read only the run store (plain JSON); nothing here imports torch. Rebuild the reports of
a results folder with ``python -m benchmark.report RESULTS_DIR``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy.special import stdtrit  # inverse CDF of Student's t (lighter import than scipy.stats)

from benchmark.markdown import HEADER_LINE, to_markdown  # noqa: F401 (part of this module's API)
from benchmark.schema import describe_reasons
from benchmark.spec import SEMANTIC_FIELDS, RunSpec
from benchmark.store import (FAILURE_COLUMN, RunStore, atomic_write_bytes, atomic_write_text,
                             known_spec_columns, results_frame)

#: Leaderboard columns, in order (the first block is the contract; the rest are extras).
BOARD_COLUMNS = [
    "dataset", "model", "method", "target_sparsity", "sparsity", "sparsity_all", "neuron_sparsity",
    "top1", "top1_ci95", "n_seeds", "dead_rate_static", "dead_rate_dynamic", "macs_sparse_ratio",
    "params_nonzero", "epochs", "train_time_s", "calibration_epochs", "calibration_time_s", "flag",
]
EXTRA_COLUMNS = [
    "top1_std", "delta_vs_dense", "n_runs", "n_missing", "val_top1", "activation", "method_base",
    "method_hparams", "train_config", "cell_id", "calibration_value", "calibration_probes",
    # x+ap cells: paired-by-seed deltas against x (benchmark/ap_effect.py)
    "ap_base", "ap_seeds", "ap_base_top1", "ap_delta_top1", "ap_delta_top1_ci95", "ap_base_dnr",
    "ap_delta_dnr", "ap_delta_dnr_ci95",
]
#: Metrics averaged over the complete seeds of a cell.
MEAN_METRICS = [
    "sparsity", "sparsity_all", "neuron_sparsity", "top1", "dead_rate_static", "dead_rate_dynamic",
    "params_nonzero", "epochs", "train_time_s", "val_top1",
    "calibration_epochs", "calibration_time_s", "calibration_value", "calibration_probes",
]
#: Spec fields that identify the cell but are not part of its training configuration.
CELL_FIELDS = {"dataset", "model", "activation", "method", "method_hparams", "target_sparsity", "seed"}
#: Spec fields saying where/how a run executes (not part of the run id, so not of the configuration).
EXECUTION_FIELDS = ({f.name for f in dataclasses.fields(RunSpec)} - set(SEMANTIC_FIELDS)) | {"spec_device"}
DENSE = "dense"
_EPS = 1e-9  # float slack on the sparsity tolerance (|0.91 - 0.90| is 0.010000000000000009)


class NoRunsError(ValueError):
    """Raised when a report is asked for and the store holds no readable run."""


@dataclass
class ReportPaths:
    """What :func:`write_reports` wrote; ``table`` is the Markdown text (the CLI prints it)."""

    csv: Path
    markdown: Path
    plots: list[Path]
    table: str


# ----------------------------------------------------------------------------------------------
# statistics

def ci95_halfwidth(values: Sequence[float]) -> float:
    """Half-width of the t-based 95% confidence interval of the mean: t_{0.975,n-1} * s / sqrt(n).

    ``s`` is the sample standard deviation (ddof=1). Missing and non-finite values are ignored;
    fewer than two values give NaN.
    """
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if len(xs) < 2:
        return math.nan
    return float(stdtrit(len(xs) - 1, 0.975) * statistics.stdev(xs) / math.sqrt(len(xs)))


def _std(values: Sequence[float]) -> float:
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return statistics.stdev(xs) if len(xs) >= 2 else math.nan


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column as floats (NaN where missing); an all-NaN series when the column is absent."""
    if column not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def _mean(frame: pd.DataFrame, column: str) -> float:
    values = _numbers(frame, column).dropna()
    return float(values.mean()) if len(values) else math.nan


# ----------------------------------------------------------------------------------------------
# cells and training configurations

def _plain(value):
    """A JSON-friendly scalar for keys: NaN -> None, numpy -> Python."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _spec_columns(runs: pd.DataFrame) -> list[str]:
    known = runs.attrs.get("spec_columns") or known_spec_columns()
    return [c for c in known if c in runs.columns]


def training_config_columns(runs: pd.DataFrame) -> list[str]:
    """Spec columns describing the training setup (budget, optimiser, schedule, split)."""
    return [c for c in _spec_columns(runs) if c not in CELL_FIELDS | EXECUTION_FIELDS]


def _train_config(row: pd.Series, columns: list[str]) -> str:
    return json.dumps({c: _plain(row[c]) for c in columns}, sort_keys=True, default=str)


def cell_keys(runs: pd.DataFrame) -> pd.Series:
    """The cell of each run: its ``cell_id``, or (when missing) its spec without seed and execution."""
    spec_cols = [c for c in _spec_columns(runs) if c != "seed" and c not in EXECUTION_FIELDS]

    def key(row: pd.Series) -> str:
        cell_id = _plain(row.get("cell_id"))
        if cell_id:
            return str(cell_id)
        return "spec:" + json.dumps({c: _plain(row[c]) for c in spec_cols}, sort_keys=True, default=str)

    if runs.empty:
        return pd.Series([], index=runs.index, dtype=object)
    return runs.apply(key, axis=1)


# ----------------------------------------------------------------------------------------------
# leaderboard

def _flags(rows: pd.DataFrame, complete: pd.DataFrame, target: float, tolerance: float,
           n_missing: int) -> list[str]:
    """Every problem of one cell, in words (empty list when fine)."""
    flags = []
    if complete.empty:
        flags.append("all seeds failed" if len(rows) else "no run")
    sparsity = _numbers(complete, "sparsity")
    if sparsity.isna().any():
        flags.append(f"sparsity not measured ({int(sparsity.isna().sum())}/{len(sparsity)} seeds)")
    measured = sparsity.dropna()
    if not math.isnan(target) and len(measured) and ((measured - target).abs() > tolerance + _EPS).any():
        flags.append(f"sparsity off target ({measured.mean():.3f} vs {target:.3f})")
    failed = rows[rows["status"] != "complete"]
    if len(failed) and not complete.empty:
        flags.append(f"{len(failed)}/{len(rows) + n_missing} seeds failed ({_reasons(failed)})")
    elif len(failed):
        flags[0] += f" ({_reasons(failed)})"
    if n_missing:
        flags.append(f"{n_missing}/{len(rows) + n_missing} seeds missing")
    return flags


def _reasons(failed: pd.DataFrame) -> str:
    """'2 diverged, 1 error' for the failed runs of a cell."""
    column = failed[FAILURE_COLUMN] if FAILURE_COLUMN in failed else pd.Series("error", index=failed.index)
    return describe_reasons(column.fillna("error").value_counts().to_dict())


def _summarise_cell(cell_id: str, rows: pd.DataFrame, config_cols: list[str], tolerance: float,
                    expected_seeds: set) -> dict:
    """One leaderboard row from all runs (seeds) of one cell."""
    first = rows.iloc[0]
    complete = rows[rows["status"] == "complete"]
    target = _mean(rows.iloc[:1], "target_sparsity")
    top1 = _numbers(complete, "top1").tolist()
    ratio = _numbers(complete, "macs_sparse") / _numbers(complete, "macs_dense").replace(0, np.nan)
    method_base = _plain(first.get("method"))
    seeds = {_plain(v) for v in rows["seed"]} if "seed" in rows else set()
    n_missing = len(expected_seeds - seeds)
    row = {
        "dataset": _plain(first.get("dataset")),
        "model": _plain(first.get("model")),
        "method": _plain(first.get("label")) or method_base,
        "target_sparsity": target,
        **{m: _mean(complete, m) for m in MEAN_METRICS},
        "top1_ci95": ci95_halfwidth(top1),
        "top1_std": _std(top1),
        "n_seeds": len(complete),
        "n_runs": len(rows),
        "n_missing": n_missing,
        "macs_sparse_ratio": float(ratio.mean()) if ratio.notna().any() else math.nan,
        "flag": "; ".join(_flags(rows, complete, target, tolerance, n_missing)),
        "activation": _plain(first.get("activation")),
        "method_base": method_base,
        "method_hparams": _plain(first.get("method_hparams")),
        "train_config": _train_config(first, config_cols),
        "cell_id": cell_id,
    }
    return row


def _dense_key(row: pd.Series) -> tuple:
    return tuple(_plain(row[c]) for c in ("dataset", "model", "activation", "train_config"))


def _delta_vs_dense(board: pd.DataFrame) -> pd.Series:
    """top1 minus the dense top1 of the same dataset/model/activation/training config (NaN if none)."""
    dense = board[(board["method_base"] == DENSE) & board["top1"].notna()]
    reference: dict[tuple, float] = {}
    for _, row in dense.sort_values("n_seeds").iterrows():  # the dense cell with most seeds wins
        reference[_dense_key(row)] = row["top1"]
    return board.apply(lambda r: r["top1"] - reference.get(_dense_key(r), math.nan), axis=1).astype(float)


def leaderboard(runs: pd.DataFrame, sparsity_tolerance: float = 0.01,
                expected_seeds: Iterable[int] | None = None) -> pd.DataFrame:
    """One row per cell (all seeds of one configuration): means over complete seeds, CI, flags.

    ``runs`` is :meth:`RunStore.frame`. Columns: :data:`BOARD_COLUMNS` then :data:`EXTRA_COLUMNS`.
    ``method`` is the run label (method plus non-default hparams). Rows are sorted by dataset,
    model, target sparsity, then top-1 descending. ``top1`` is always the final-epoch accuracy.
    ``flag`` lists every problem of the cell, joined with "; ": measured sparsity beyond
    ``sparsity_tolerance`` of the target on any seed; failed seeds with their reasons
    ("1/3 seeds failed (1 diverged)", any status other than ``complete`` counts), or "all seeds
    failed (…)" (metric columns NaN); seeds missing — the grid's ``expected_seeds`` (by default
    every seed seen in the table) that have no trusted result. A single seed is not a flag (its
    CI is NaN).
    """
    columns = BOARD_COLUMNS + EXTRA_COLUMNS
    if runs.empty:
        return pd.DataFrame(columns=columns)
    config_cols = training_config_columns(runs)
    keys = cell_keys(runs)
    if expected_seeds is None:
        expected_seeds = _numbers(runs, "seed").dropna().astype(int).tolist() if "seed" in runs else []
    expected = {int(s) for s in expected_seeds}
    rows = [_summarise_cell(key, group, config_cols, sparsity_tolerance, expected)
            for key, group in runs.groupby(keys, sort=True)]
    board = pd.DataFrame(rows)
    board["delta_vs_dense"] = _delta_vs_dense(board)
    from benchmark.ap_effect import ap_effect  # it imports this module's helpers
    board = board.join(ap_effect(runs, keys), on="cell_id")
    board = board.sort_values(
        ["dataset", "model", "target_sparsity", "top1", "method", "cell_id"],
        ascending=[True, True, True, False, True, True], na_position="last", kind="mergesort")
    board = board.reset_index(drop=True)[columns]
    for column in ("n_seeds", "n_runs", "n_missing"):
        board[column] = board[column].astype(int)
    return board


# ----------------------------------------------------------------------------------------------
# files

def write_reports(store: RunStore, out_dir: str | Path, run_ids: Iterable[str] | None = None,
                  sparsity_tolerance: float = 0.01, plots: bool = True,
                  expected_seeds: Iterable[int] | None = None) -> ReportPaths:
    """Write leaderboard.csv, leaderboard.md and (optionally) plots/*.png under ``out_dir``.

    Everything is computed in memory first, then each file is written atomically, so a failure
    never leaves a half-written report. Figures that cannot be drawn (nothing to show) are not
    written, and a stale copy of such a figure from an earlier report is removed.
    Only trusted results are read (see :mod:`benchmark.schema`); ``expected_seeds`` are the seeds
    the grid asked for (missing ones are flagged). Raises :class:`NoRunsError` when the store
    (restricted to ``run_ids``) has no trusted run.
    """
    results = store.results(run_ids)
    if not results:
        raise NoRunsError(f"no runs found in {store.runs_dir}")
    runs = results_frame(results)
    board = leaderboard(runs, sparsity_tolerance, expected_seeds)
    table = to_markdown(board, sparsity_tolerance)
    figures: dict[str, bytes] = {}
    if plots:
        from benchmark.plots import render_figures  # matplotlib only when plotting
        figures = render_figures(runs, results, board)
    out = Path(out_dir)
    csv_path = atomic_write_text(out / "leaderboard.csv", board.to_csv(index=False))
    md_path = atomic_write_text(out / "leaderboard.md", table)
    plot_paths = [atomic_write_bytes(out / "plots" / name, data) for name, data in figures.items()]
    if plots:
        _remove_stale_figures(out / "plots", set(figures))
    return ReportPaths(csv=csv_path, markdown=md_path, plots=plot_paths, table=table)


def _remove_stale_figures(plot_dir: Path, written: set[str]) -> None:
    from benchmark.plots import FIGURE_NAMES
    for name in FIGURE_NAMES:
        if name not in written:
            (plot_dir / name).unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: rebuild the reports of a results folder from every run in its store."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.report", description=main.__doc__)
    parser.add_argument("results_dir", type=Path, help="results folder (holds runs/<run_id>/result.json)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the reports (default: results_dir)")
    parser.add_argument("--sparsity-tolerance", type=float, default=0.01,
                        help="flag cells whose measured sparsity misses the target by more (default 0.01)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    args = parser.parse_args(argv)
    store = RunStore(args.results_dir)
    skipped = store.problems()
    for path, why in skipped:
        print(f"warning: skipped {path}: {why}", file=sys.stderr)
    try:
        paths = write_reports(store, args.out or args.results_dir,
                              sparsity_tolerance=args.sparsity_tolerance, plots=not args.no_plots)
    except NoRunsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(paths.table)
    print(f"wrote {paths.csv}, {paths.markdown}" + "".join(f", {p}" for p in paths.plots))
    if skipped:
        print(f"skipped {len(skipped)} result file(s) that cannot be trusted (see the warnings above)",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
