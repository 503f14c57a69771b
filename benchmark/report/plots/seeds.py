"""Seeds in figures: each cell's spread, its individual seeds, and runs at chance kept off the scale.

A cell with three or more seeds shows its 95% t-interval; with fewer it shows the min–max range
and every seed's own point (:mod:`benchmark.report.spread` states the rule once for tables and
figures). A run at chance level (collapsed, see :func:`benchmark.report.leaderboard.at_chance`)
never sets a panel's y range: the range is taken from every other value, and whatever falls below
it is drawn as a ▼ on the panel's floor with its value written beside it.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from benchmark.report.cells import cell_keys
from benchmark.report.leaderboard import at_chance
from benchmark.report.spread import INTERVAL, RANGE, spread_bounds, spread_kind
from benchmark.report.statistics import numbers

SEED_MARKER_SIZE = 3.5
FLOOR_MARKER = "v"


def seed_frame(runs: pd.DataFrame, keys: pd.Series | None = None) -> pd.DataFrame:
    """Every complete run: ``cell_id``, ``seed``, ``top1``, ``sparsity``, ``at_chance``; ``keys`` are the
    runs' cell ids when the caller has them (:func:`benchmark.report.cells.cell_keys`)."""
    columns = ["cell_id", "seed", "top1", "sparsity", "at_chance"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    keys = cell_keys(runs) if keys is None else keys
    complete = runs[runs["status"] == "complete"]
    frame = pd.DataFrame({"cell_id": keys[complete.index], "seed": complete.get("seed"),
                          "top1": numbers(complete, "top1"), "sparsity": numbers(complete, "sparsity"),
                          "at_chance": at_chance(complete)})
    return frame.reindex(columns=columns)


def bounds(cells: pd.DataFrame, metric: str = "top1",
           count: str = "n_seeds") -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the lower and upper end of its error bar (NaN for one seed), as arrays
    (:func:`benchmark.report.spread.spread_bounds`)."""
    pairs = [spread_bounds(row, metric, count) for _, row in cells.iterrows()]
    low = np.array([p[0] for p in pairs], dtype=float)
    high = np.array([p[1] for p in pairs], dtype=float)
    return low, high


def collapsed(cell: pd.Series) -> bool:
    """Whether a leaderboard cell has a run at chance (its values must not set an axis)."""
    return int(cell.get("n_at_chance", 0) or 0) > 0


def shows_seeds(cell: pd.Series, count: str = "n_seeds") -> bool:
    """Whether a cell's seeds are drawn one by one (fewer than three seeds, or paired seeds)."""
    return spread_kind(cell.get(count, 0)) != INTERVAL


def draw_seed_points(ax: Axes, x: float, values: np.ndarray, color, marker: str) -> None:
    """A cell's individual seeds: small hollow markers at its x."""
    values = np.asarray(values, dtype=float)
    if len(values):
        ax.plot(np.full(len(values), x), values, linestyle="none", marker=marker,
                markersize=SEED_MARKER_SIZE, markerfacecolor="white", markeredgecolor=color,
                markeredgewidth=1.0, zorder=4)


def trusted_limits(values: list[float], floor: float | None = None, pad: float = 0.08,
                   min_span: float = 1.0) -> tuple[float, float]:
    """(low, high) of a y axis covering ``values`` (NaN ignored) with ``pad`` of the span on each
    side and at least ``min_span``; ``floor`` optionally kept in view (0 for Δ axes)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if floor is not None:
        finite.append(floor)
    if not finite:
        return 0.0, 100.0
    low, high = min(finite), max(finite)
    if high - low < min_span:
        middle = (high + low) / 2
        low, high = middle - min_span / 2, middle + min_span / 2
    span = high - low
    return low - pad * span, high + pad * span


def mark_below_floor(ax: Axes, xs: np.ndarray, ys: np.ndarray, color, label: str = "") -> int:
    """Draw the (x, y) points below the axis' lower limit as one ▼ per x on the floor, their values
    written beside it ("10.0 / 13.1"); returns how many points were below."""
    low = ax.get_ylim()[0]
    below: dict[float, list[float]] = {}
    for x, y in zip(xs, ys):
        if math.isfinite(y) and y < low:
            below.setdefault(float(x), []).append(float(y))
    for x, values in below.items():
        ax.plot([x], [0.015], transform=ax.get_xaxis_transform(), marker=FLOOR_MARKER, markersize=8,
                color=color, linestyle="none", clip_on=False, zorder=6)
        text = " / ".join(f"{v:.1f}" for v in sorted(set(round(v, 1) for v in values)))
        ax.annotate(f"{label}{text}", xy=(x, 0.015), xycoords=ax.get_xaxis_transform(), xytext=(5, 2),
                    textcoords="offset points", fontsize="x-small", color=color, zorder=6)
    return sum(len(v) for v in below.values())


def floor_marks(ax: Axes, points: list[tuple[float, float, object]]) -> int:
    """:func:`mark_below_floor` for (x, y, colour) points of several colours; returns how many were below."""
    by_color: dict[object, list[tuple[float, float]]] = {}
    for x, y, color in points:
        by_color.setdefault(tuple(color) if not isinstance(color, str) else color, []).append((x, y))
    return sum(mark_below_floor(ax, [p[0] for p in pts], [p[1] for p in pts], color)
               for color, pts in by_color.items())


def spread_legend(cells: pd.DataFrame, n_floor: int = 0, seeds_drawn: bool = True) -> list[Line2D]:
    """Legend entries explaining the error bars, the seed points and the floor markers a figure uses."""
    kinds = {spread_kind(n) for n in cells["n_seeds"]}
    entries = []
    if INTERVAL in kinds:
        entries.append(Line2D([], [], color="0.4", linewidth=6, alpha=0.3,
                              label="band/bar: 95% t-interval (≥ 3 seeds)"))
    if RANGE in kinds:
        entries.append(Line2D([], [], color="0.4", linewidth=6, alpha=0.15,
                              label="band/bar: min–max over seeds (< 3 seeds)"))
        if seeds_drawn:
            entries.append(Line2D([], [], linestyle="none", marker="o", markersize=SEED_MARKER_SIZE + 1,
                                  markerfacecolor="white", markeredgecolor="0.3",
                                  label="small hollow marker: one seed"))
    if n_floor:
        entries.append(Line2D([], [], linestyle="none", marker=FLOOR_MARKER, color="0.3",
                              label="▼ off the axis (a run at chance): value beside it"))
    return entries


def range_kind_present(cells: pd.DataFrame) -> bool:
    return any(spread_kind(n) == RANGE for n in cells["n_seeds"])
