"""The leaderboard: one row per cell (all seeds of one configuration), mean and 95% CI over seeds,
the gap to dense, the AP effect, and a flag naming every problem of the cell.

Reports read only the run store (plain JSON); nothing here imports torch.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd

from benchmark.report.ap_effect import AP_COLUMNS, ap_effect
from benchmark.report.reference import (REFERENCE_COLUMNS, REFERENCE_RANGE_COLUMNS, default_reference,
                                        reference_stats)
from benchmark.report.cells import DENSE, cell_keys, plain, training_config_columns, train_config
from benchmark.report.statistics import ci95_halfwidth, mean_of, numbers, sample_std
from benchmark.store.run_store import FAILURE_COLUMN
from benchmark.store.schema import describe_reasons

#: Leaderboard columns, in order (the first block is the contract; the rest are extras).
BOARD_COLUMNS = [
    "dataset", "model", "method", "target_sparsity", "sparsity", "sparsity_all", "neuron_sparsity",
    "top1", "top1_ci95", "n_seeds", "dead_rate_static", "dead_rate_dynamic", "macs_sparse_ratio",
    "params_nonzero", "epochs", "train_time_s", "calibration_epochs", "calibration_time_s", "flag",
]
EXTRA_COLUMNS = [
    "top1_std", "top1_min", "top1_max", "delta_vs_dense", "n_runs", "n_missing", "n_at_chance", "val_top1",
    "macs_live_ratio", "epochs_spent", "activation",
    "method_base", "method_hparams", "train_config", "cell_id", "calibration_value", "calibration_probes",
    # x+ap cells: paired-by-seed deltas against x (benchmark/report/ap_effect.py)
    *AP_COLUMNS,
    # every cell against the reference method, paired by seed (benchmark/report/reference.py)
    *REFERENCE_COLUMNS, *REFERENCE_RANGE_COLUMNS,
]
#: Metrics averaged over the complete seeds of a cell.
MEAN_METRICS = [
    "sparsity", "sparsity_all", "neuron_sparsity", "top1", "dead_rate_static", "dead_rate_dynamic",
    "params_nonzero", "epochs", "train_time_s", "val_top1",
    "calibration_epochs", "calibration_time_s", "calibration_value", "calibration_probes",
]
_EPS = 1e-9  # float slack on the sparsity tolerance (|0.91 - 0.90| is 0.010000000000000009)
#: A run is *at chance* when its top-1 is within this share of the way from chance (1 / classes) to 100%.
AT_CHANCE_MARGIN = 0.05


def at_chance(runs: pd.DataFrame) -> pd.Series:
    """True for each complete run whose top-1 is at most chance + 5% of the remaining way to 100%
    (14.5% with 10 classes, 5.95% with 100): a collapsed run, which reports mark and keep off their
    axes' scale. False where the class count was not recorded."""
    chance = 1 / numbers(runs, "num_classes")
    return (numbers(runs, "top1") <= chance + AT_CHANCE_MARGIN * (1 - chance)).fillna(False)


def _flags(rows: pd.DataFrame, complete: pd.DataFrame, target: float, tolerance: float,
           n_missing: int, n_at_chance: int) -> list[str]:
    """Every problem of one cell, in words (empty list when fine)."""
    flags = []
    if complete.empty:
        flags.append("all seeds failed" if len(rows) else "no run")
    sparsity = numbers(complete, "sparsity")
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
    if n_at_chance:
        flags.append(f"{n_at_chance}/{len(complete)} seeds at chance")
    return flags


def _reasons(failed: pd.DataFrame) -> str:
    """'2 diverged, 1 error' for the failed runs of a cell."""
    column = failed[FAILURE_COLUMN] if FAILURE_COLUMN in failed else pd.Series("error", index=failed.index)
    return describe_reasons(column.fillna("error").value_counts().to_dict())


def _summarise_cell(cell_id: str, rows: pd.DataFrame, tolerance: float, expected_seeds: set) -> dict:
    """One leaderboard row from all runs (seeds) of one cell (``rows`` carry their ``train_config``)."""
    first = rows.iloc[0]
    complete = rows[rows["status"] == "complete"]
    target = mean_of(rows.iloc[:1], "target_sparsity")
    top1 = numbers(complete, "top1").tolist()
    macs_dense = numbers(complete, "macs_dense").replace(0, np.nan)
    ratio, live = numbers(complete, "macs_sparse") / macs_dense, numbers(complete, "macs_live") / macs_dense
    n_at_chance = int(at_chance(complete).sum())
    spent = numbers(complete, "epochs") + numbers(complete, "calibration_epochs").fillna(0)
    method_base = plain(first.get("method"))
    seeds = {plain(v) for v in rows["seed"]} if "seed" in rows else set()
    n_missing = len(expected_seeds - seeds)
    row = {
        "dataset": plain(first.get("dataset")),
        "model": plain(first.get("model")),
        "method": plain(first.get("label")) or method_base,
        "target_sparsity": target,
        **{m: mean_of(complete, m) for m in MEAN_METRICS},
        "top1_ci95": ci95_halfwidth(top1),
        "top1_std": sample_std(top1),
        "top1_min": min((v for v in top1 if not math.isnan(v)), default=math.nan),
        "top1_max": max((v for v in top1 if not math.isnan(v)), default=math.nan),
        "n_seeds": len(complete),
        "n_runs": len(rows),
        "n_missing": n_missing,
        "n_at_chance": n_at_chance,
        "macs_sparse_ratio": float(ratio.mean()) if ratio.notna().any() else math.nan,
        "macs_live_ratio": float(live.mean()) if live.notna().any() else math.nan,
        "epochs_spent": float(spent.mean()) if spent.notna().any() else math.nan,
        "flag": "; ".join(_flags(rows, complete, target, tolerance, n_missing, n_at_chance)),
        "activation": plain(first.get("activation")),
        "method_base": method_base,
        "method_hparams": plain(first.get("method_hparams")),
        "train_config": first["train_config"],
        "cell_id": cell_id,
    }
    return row


def _dense_key(row: pd.Series) -> tuple:
    return tuple(plain(row[c]) for c in ("dataset", "model", "activation", "train_config"))


def _delta_vs_dense(board: pd.DataFrame) -> pd.Series:
    """top1 minus the dense top1 of the same dataset/model/activation/training config (NaN if none)."""
    dense = board[(board["method_base"] == DENSE) & board["top1"].notna()]
    reference: dict[tuple, float] = {}
    for _, row in dense.sort_values("n_seeds").iterrows():  # the dense cell with most seeds wins
        reference[_dense_key(row)] = row["top1"]
    return board.apply(lambda r: r["top1"] - reference.get(_dense_key(r), math.nan), axis=1).astype(float)


def with_train_config(runs: pd.DataFrame) -> pd.DataFrame:
    """The run frame with each run's ``train_config`` (:func:`benchmark.report.cells.train_config`)."""
    config_cols = training_config_columns(runs)
    return runs.assign(train_config=runs.apply(lambda row: train_config(row, config_cols), axis=1))


def leaderboard(runs: pd.DataFrame, sparsity_tolerance: float = 0.01,
                expected_seeds: Iterable[int] | None = None, reference: str | None = None) -> pd.DataFrame:
    """One row per cell (all seeds of one configuration): means over complete seeds, CI, flags.

    ``runs`` is :meth:`RunStore.frame`. Columns: :data:`BOARD_COLUMNS` then :data:`EXTRA_COLUMNS`.
    ``method`` is the run label (method plus non-default hparams). Rows are sorted by dataset,
    model, target sparsity, then top-1 descending. ``top1`` is always the final-epoch accuracy.
    ``flag`` lists every problem of the cell, joined with "; ": measured sparsity beyond
    ``sparsity_tolerance`` of the target on any seed; failed seeds with their reasons
    ("1/3 seeds failed (1 diverged)", any status other than ``complete`` counts), or "all seeds
    failed (…)" (metric columns NaN); seeds missing — the grid's ``expected_seeds`` (by default
    every seed seen in the table) that have no trusted result. A single seed is not a flag (its
    CI is NaN). ``reference`` (default :func:`~benchmark.report.reference.default_reference`) is
    the method every cell is compared with, paired by seed (:mod:`benchmark.report.reference`).
    """
    columns = BOARD_COLUMNS + EXTRA_COLUMNS
    if runs.empty:
        return pd.DataFrame(columns=columns)
    runs = with_train_config(runs)
    keys = cell_keys(runs)
    if expected_seeds is None:
        expected_seeds = numbers(runs, "seed").dropna().astype(int).tolist() if "seed" in runs else []
    expected = {int(s) for s in expected_seeds}
    rows = [_summarise_cell(key, group, sparsity_tolerance, expected)
            for key, group in runs.groupby(keys, sort=True)]
    board = pd.DataFrame(rows)
    board["delta_vs_dense"] = _delta_vs_dense(board)
    board = board.join(ap_effect(runs, keys), on="cell_id")
    reference = reference or default_reference(board["method"])
    board = board.join(reference_stats(runs, keys, board, reference), on="cell_id")
    board = board.sort_values(
        ["dataset", "model", "target_sparsity", "top1", "method", "cell_id"],
        ascending=[True, True, True, False, True, True], na_position="last", kind="mergesort")
    board = board.reset_index(drop=True)[columns]
    for column in ("n_seeds", "n_runs", "n_missing", "n_at_chance", "reference_pairs"):
        board[column] = board[column].astype(int)
    return board
