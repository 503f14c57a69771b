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

from benchmark.report.statistics import is_missing

#: From this many complete seeds a cell shows mean ± 95% t-interval; below it, mean (min–max).
MIN_SEEDS_FOR_CI = 3
INTERVAL = "interval"
RANGE = "range"
SINGLE = "single"


def spread_kind(n_seeds: int) -> str:
    """:data:`INTERVAL` (≥ 3 seeds), :data:`RANGE` (2 seeds) or :data:`SINGLE` (0 or 1 seed)."""
    n = int(n_seeds) if not is_missing(n_seeds) else 0
    return INTERVAL if n >= MIN_SEEDS_FOR_CI else RANGE if n >= 2 else SINGLE


def board_kinds(board: pd.DataFrame) -> list[str]:
    """The spread kinds the cells of ``board`` show, strongest first (empty for an empty board)."""
    kinds = {spread_kind(n) for n in board["n_seeds"]} if len(board) else set()
    return [k for k in (INTERVAL, RANGE, SINGLE) if k in kinds]


def spread_bounds(row: pd.Series, metric: str = "top1", count: str = "n_seeds") -> tuple[float, float]:
    """(low, high) of a cell's error bar for ``metric``: mean ∓ ``<metric>_ci95`` from 3 seeds on,
    ``<metric>_min``/``_max`` below; NaN for one seed. ``count`` names the column holding how many
    seeds (or paired seeds) the statistics are over."""
    kind = spread_kind(row.get(count, 0))
    mean = row[metric]
    if kind == INTERVAL and not is_missing(row.get(f"{metric}_ci95")):
        return mean - row[f"{metric}_ci95"], mean + row[f"{metric}_ci95"]
    if kind == RANGE:
        return row.get(f"{metric}_min", math.nan), row.get(f"{metric}_max", math.nan)
    return math.nan, math.nan


def format_spread(row: pd.Series, metric: str, count: str = "n_seeds", spec: str = ".2f", pm: str = "±",
                  dash: str = "–") -> str:
    """``metric`` in percent (points) with its spread by the rule above: ``mean ± CI`` from 3 seeds on,
    ``mean (min–max)`` with 2, ``mean`` with 1, ``—`` when missing. ``spec`` formats the mean and the
    range (``+.2f`` for a signed Δ); the interval's half-width is written unsigned."""
    if is_missing(row[metric]):
        return "—"
    text = format(100 * row[metric], spec)
    kind = spread_kind(row.get(count, 0))
    ci = row.get(f"{metric}_ci95")
    if kind == INTERVAL and not is_missing(ci):
        return f"{text} {pm} {format(100 * ci, spec.lstrip('+'))}"
    if kind == RANGE:
        low, high = (format(100 * row[f"{metric}_{end}"], spec) for end in ("min", "max"))
        return f"{text} ({low}{dash}{high})"
    return text


def format_top1(row: pd.Series, pm: str = "±", dash: str = "–", digits: int = 2) -> str:
    """``88.75 ± 0.57`` (≥ 3 seeds), ``88.75 (88.10–89.30)`` (2 seeds), ``88.75`` (1), ``—`` (none); in %."""
    return format_spread(row, "top1", spec=f".{digits}f", pm=pm, dash=dash)


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
