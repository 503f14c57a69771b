"""The leaderboard as a Markdown document: explanation, pipe table, notes on flags and budgets.

Reads only the leaderboard frame of :func:`benchmark.report.leaderboard` (no store, no torch).
"""
from __future__ import annotations

import pandas as pd
from tabulate import tabulate

from benchmark.report.ap_effect import ap_markdown
from benchmark.report.cells import series_names, target_text
from benchmark.report.reference import reference_of
from benchmark.report.statistics import is_missing
from benchmark.report.spread import describe_board, format_spread, format_top1

HEADER_LINE = ("top-1 = final-epoch test accuracy, {spread}; sparsity over prunable weights, measured from "
               "the weights")


def format_number(value, spec: str, scale: float = 1.0) -> str:
    """``value × scale`` formatted by ``spec``; ``—`` when missing."""
    return "—" if is_missing(value) else format(float(value) * scale, spec)


def significance(p_holm) -> str:
    """``**`` for a Holm-adjusted p below 0.01, ``*`` below 0.05, nothing otherwise."""
    if is_missing(p_holm):
        return ""
    return "**" if p_holm < 0.01 else "*" if p_holm < 0.05 else ""


def format_delta_reference(row: pd.Series) -> str:
    """Δ top-1 against the reference, paired by seed, in pp with its significance marks: ``+0.52 ± 0.30*``
    from three pairs on, ``+0.52 (+0.10–+0.94)`` with two, ``+0.52`` with one; ``—`` for the reference."""
    text = format_spread(row, "delta_vs_reference", count="reference_pairs", spec="+.2f")
    return text if text == "—" else text + significance(row.get("p_holm"))


def format_budget(row: pd.Series, own: str, search: str, spec: str) -> str:
    """A run's budget, plus its calibration search's (``6 + 30``) where the method had one."""
    text = format_number(row[own], spec)
    return text if is_missing(row.get(search)) else f"{text} + {format_number(row[search], spec)}"


#: The full leaderboard's columns in every table format: (header, plain-text formatter, right-aligned);
#: the ``name`` they read is set by :func:`named`.
LEADERBOARD_COLUMNS = [
    ("dataset", lambda r: str(r["dataset"]), False),
    ("model", lambda r: str(r["model"]), False),
    ("method", lambda r: str(r["name"]), False),
    ("target", lambda r: target_text(r["target_sparsity"]), True),
    ("sparsity (%)", lambda r: format_number(r["sparsity"], ".2f", 100), True),
    ("top-1 (%)", format_top1, True),
    ("Δ dense (pp)", lambda r: format_number(r["delta_vs_dense"], "+.2f", 100), True),
    ("Δ ref (pp)", format_delta_reference, True),
    ("rank", lambda r: format_number(r.get("rank"), ".2g"), True),
    ("seeds", lambda r: str(int(r["n_seeds"])), True),
    ("dead units (%)", lambda r: format_number(r["neuron_sparsity"], ".1f", 100), True),
    ("dead static (%)", lambda r: format_number(r["dead_rate_static"], ".1f", 100), True),
    ("dead dynamic (%)", lambda r: format_number(r["dead_rate_dynamic"], ".1f", 100), True),
    ("MACs (% dense)", lambda r: format_number(r["macs_sparse_ratio"], ".2f", 100), True),
    ("nonzero params", lambda r: format_number(r["params_nonzero"], ",.0f"), True),
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
    reference = reference_of(board) or "the reference"
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
