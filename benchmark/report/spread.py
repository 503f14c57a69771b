"""How a cell's spread over seeds is shown: a t-interval from three seeds on, the range below.

With two seeds the t-interval's multiplier is t₀.₉₇₅,₁ = 12.7, so ``mean ± CI`` reads
``68.36 ± 78.97`` and a plotted band spans most of the axis: it says nothing. Below
:data:`MIN_SEEDS_FOR_CI` complete seeds every table and figure shows ``mean (min–max)`` and the
individual seeds instead, and says so. One seed has no spread at all. Every table (Markdown,
LaTeX, terminal, HTML) and figure formats through this module, so the rule is applied once.
"""
from __future__ import annotations

import math

import pandas as pd

#: From this many complete seeds a cell shows mean ± 95% t-interval; below it, mean (min–max).
MIN_SEEDS_FOR_CI = 3
INTERVAL = "interval"
RANGE = "range"
SINGLE = "single"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def spread_kind(n_seeds: int) -> str:
    """:data:`INTERVAL` (≥ 3 seeds), :data:`RANGE` (2 seeds) or :data:`SINGLE` (0 or 1 seed)."""
    n = int(n_seeds) if not _missing(n_seeds) else 0
    return INTERVAL if n >= MIN_SEEDS_FOR_CI else RANGE if n >= 2 else SINGLE


def board_kinds(board: pd.DataFrame) -> list[str]:
    """The spread kinds the cells of ``board`` show, strongest first (empty for an empty board)."""
    kinds = {spread_kind(n) for n in board["n_seeds"]} if len(board) else set()
    return [k for k in (INTERVAL, RANGE, SINGLE) if k in kinds]


def spread_bounds(row: pd.Series, metric: str = "top1") -> tuple[float, float]:
    """(low, high) of a cell's error bar: mean ∓ CI from 3 seeds on, min and max below; NaN for one seed."""
    kind = spread_kind(row["n_seeds"])
    mean = row[metric]
    if kind == INTERVAL and not _missing(row.get(f"{metric}_ci95")):
        return mean - row[f"{metric}_ci95"], mean + row[f"{metric}_ci95"]
    if kind == RANGE:
        return row.get(f"{metric}_min", math.nan), row.get(f"{metric}_max", math.nan)
    return math.nan, math.nan


def format_top1(row: pd.Series, pm: str = "±", dash: str = "–", digits: int = 2) -> str:
    """``88.75 ± 0.57`` (≥ 3 seeds), ``88.75 (88.10–89.30)`` (2 seeds), ``88.75`` (1), ``—`` (none); in %."""
    if _missing(row["top1"]):
        return "—"
    text = f"{100 * row['top1']:.{digits}f}"
    kind = spread_kind(row["n_seeds"])
    if kind == INTERVAL and not _missing(row.get("top1_ci95")):
        return f"{text} {pm} {100 * row['top1_ci95']:.{digits}f}"
    if kind == RANGE:
        return f"{text} ({100 * row['top1_min']:.{digits}f}{dash}{100 * row['top1_max']:.{digits}f})"
    return text


def describe(kind: str) -> str:
    """What a cell's spread is, in words (for captions, legends and headers)."""
    return {INTERVAL: "mean ± 95% t-interval over seeds",
            RANGE: "mean (min–max) over seeds (fewer than 3: no t-interval)",
            SINGLE: "a single seed (no spread)"}[kind]


def describe_board(board: pd.DataFrame) -> str:
    """Every spread the board's cells show, in words: 'mean ± 95% t-interval over seeds' or, for a
    board mixing seed counts, each kind with the seed counts it applies to."""
    kinds = board_kinds(board)
    if len(kinds) <= 1:
        return describe(kinds[0] if kinds else SINGLE)
    where = {INTERVAL: "≥ 3 seeds", RANGE: "2 seeds", SINGLE: "1 seed"}
    return "; ".join(f"{describe(k)} where {where[k]}" for k in kinds)
