"""The leaderboard as a Markdown document: explanation, pipe table, notes on flags and budgets.

Reads only the leaderboard frame of :func:`benchmark.report.leaderboard` (no store, no torch).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from tabulate import tabulate

from benchmark.report.ap_effect import ap_markdown
from benchmark.report.cells import series_names
from benchmark.report.spread import INTERVAL, RANGE, describe_board, format_top1, spread_kind

HEADER_LINE = ("top-1 = final-epoch test accuracy, {spread}; sparsity over prunable weights, measured from "
               "the weights")


def _isnan(value) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def _fmt(value, spec: str, scale: float = 1.0, missing: str = "—") -> str:
    return missing if _isnan(value) else format(float(value) * scale, spec)


def _fmt_target(value) -> str:
    return "—" if _isnan(value) else f"{100 * float(value):g}%"


def significance(p_holm) -> str:
    """``**`` for a Holm-adjusted p below 0.01, ``*`` below 0.05, nothing otherwise."""
    if _isnan(p_holm):
        return ""
    return "**" if p_holm < 0.01 else "*" if p_holm < 0.05 else ""


def format_delta_reference(row: pd.Series) -> str:
    """Δ top-1 against the reference, paired by seed, in pp with its significance marks: ``+0.52 ± 0.30*``
    from three pairs on, ``+0.52 (+0.10–+0.94)`` with two, ``+0.52`` with one; ``—`` for the reference."""
    delta = row.get("delta_vs_reference")
    if _isnan(delta):
        return "—"
    text = f"{100 * delta:+.2f}"
    kind = spread_kind(row.get("reference_pairs", 0))
    if kind == INTERVAL and not _isnan(row.get("delta_vs_reference_ci95")):
        text += f" ± {100 * row['delta_vs_reference_ci95']:.2f}"
    elif kind == RANGE:
        text += f" ({100 * row['delta_vs_reference_min']:+.2f}–{100 * row['delta_vs_reference_max']:+.2f})"
    return text + significance(row.get("p_holm"))


def format_budget(row: pd.Series, own: str, search: str, spec: str) -> str:
    """A run's budget, plus its calibration search's (``6 + 30``) where the method had one."""
    text = _fmt(row[own], spec)
    return text if _isnan(row.get(search)) else f"{text} + {_fmt(row[search], spec)}"


#: The full leaderboard's columns in every table format: (header, plain-text formatter, right-aligned);
#: the ``name`` they read is set by :func:`named`.
LEADERBOARD_COLUMNS = [
    ("dataset", lambda r: str(r["dataset"]), False),
    ("model", lambda r: str(r["model"]), False),
    ("method", lambda r: str(r["name"]), False),
    ("target", lambda r: _fmt_target(r["target_sparsity"]), True),
    ("sparsity (%)", lambda r: _fmt(r["sparsity"], ".2f", 100), True),
    ("top-1 (%)", format_top1, True),
    ("Δ dense (pp)", lambda r: _fmt(r["delta_vs_dense"], "+.2f", 100), True),
    ("Δ ref (pp)", format_delta_reference, True),
    ("rank", lambda r: _fmt(r.get("rank"), ".2g"), True),
    ("seeds", lambda r: str(int(r["n_seeds"])), True),
    ("dead units (%)", lambda r: _fmt(r["neuron_sparsity"], ".1f", 100), True),
    ("dead static (%)", lambda r: _fmt(r["dead_rate_static"], ".1f", 100), True),
    ("dead dynamic (%)", lambda r: _fmt(r["dead_rate_dynamic"], ".1f", 100), True),
    ("MACs (% dense)", lambda r: _fmt(r["macs_sparse_ratio"], ".2f", 100), True),
    ("nonzero params", lambda r: _fmt(r["params_nonzero"], ",.0f"), True),
    ("epochs", lambda r: format_budget(r, "epochs", "calibration_epochs", "g"), True),
    ("time (s)", lambda r: format_budget(r, "train_time_s", "calibration_time_s", ".1f"), True),
    ("flag", lambda r: str(r["flag"] or ""), False),
]


def named(board: pd.DataFrame) -> pd.DataFrame:
    """``board`` with each cell's table name (``name``): rows that differ in training only say how."""
    panels = board[["dataset", "model", "activation"]].astype(str).agg(" / ".join, axis=1)
    return board.assign(name=series_names(board, panels)[0])


def leaderboard_columns(board: pd.DataFrame) -> list[tuple]:
    """:data:`LEADERBOARD_COLUMNS`, with an activation column where the board has several."""
    columns = list(LEADERBOARD_COLUMNS)
    if board["activation"].nunique(dropna=True) > 1:
        columns.insert(2, ("activation", lambda r: str(r["activation"]), False))
    return columns


def _table(board: pd.DataFrame) -> str:
    board = named(board)
    columns = leaderboard_columns(board)
    headers = [h for h, _, _ in columns]
    body = [[fmt(row) for _, fmt, _ in columns] for _, row in board.iterrows()]
    align = ["right" if right else "left" for _, _, right in columns]
    return tabulate(body, headers=headers, tablefmt="pipe", disable_numparse=True, colalign=align)


def _reference_line(board: pd.DataFrame) -> str:
    given = board["reference"].dropna() if "reference" in board else pd.Series(dtype=object)
    reference = given.iloc[0] if len(given) else "the reference"
    return (f"Δ ref = top-1 minus {reference}'s at the same seeds and sparsity (pp; ± paired 95% t-interval "
            f"from 3 paired seeds, (min–max) of the per-seed differences with 2; "
            f"* / ** = paired t-test p < 0.05 / 0.01 after Holm's correction over the table); rank = the "
            f"method's mean rank by top-1 over the sparsities (1 = best).")


def to_markdown(board: pd.DataFrame, sparsity_tolerance: float | None = None) -> str:
    """The leaderboard as a Markdown document: explanation line, pipe table, notes on the flags."""
    tol = "the tolerance" if sparsity_tolerance is None else f"{sparsity_tolerance:g}"
    lines = [
        "# prunebench leaderboard",
        "",
        HEADER_LINE.format(spread=describe_board(board)) + ".",
        "Other columns are means over the complete seeds. Δ dense = top-1 minus the dense model's "
        "top-1 (same data, model and training), in percentage points. dead units = structurally dead "
        "hidden units (no incoming weight); dead static = units never active on the test set; "
        "dead dynamic = zero post-activation entries over the training batches. MACs are theoretical "
        "(one forward pass: the non-zero weights times their output positions), as % of the dense model; "
        "the CSV's macs_live_ratio also skips inputs never alive on the test set.",
        _reference_line(board),
        "",
        _table(board) if len(board) else "_no runs_",
        "",
        f"Flags: *sparsity off target (actual vs target)* = some seed's measured sparsity differs from "
        f"its target by more than {tol} (the mean actual sparsity is shown); *k/n seeds failed (reasons)* "
        f"= those seeds are left out of the means (their errors are in runs/<run_id>/result.json); "
        f"*k/n seeds missing* = seeds of the grid with no trusted result; *k/n seeds at chance* = runs whose "
        f"top-1 is at chance level (collapsed; kept in the means, marked in the figures); a single seed "
        f"has no spread.",
        "",
    ]
    if board.get("calibration_epochs", pd.Series(dtype=float)).notna().any():
        lines[-1:-1] = [
            "", "Calibrated methods (sparsity set by a searched hyperparameter, e.g. gRDA's c): *epochs* and "
            "*time (s)* read `run + search`, the search being the probe runs that found the value "
            "(once per cell, shared by its seeds; the CSV's calibration_value holds the value)."]
    section = ap_markdown(board)
    return "\n".join(lines + ([section] if section else []))
