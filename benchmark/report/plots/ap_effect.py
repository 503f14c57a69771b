"""Figure ``ap_effect``: what AP changes, per base method and target sparsity.

One row per data set / model, two panels: Δ top-1 and Δ dynamic dead-neuron rate of ``x+ap`` minus
``x`` (percentage points, mean over paired seeds; see :mod:`benchmark.report.ap_effect`). The bar is
the paired 95% t-interval from three pairs on, else the min–max of the per-seed differences (with
two pairs, the two seeds themselves). AP's premise is a point above zero on the left and below zero
on the right. A cell with a run at chance does not set the y range (it is marked on the floor), so
one collapsed run cannot flatten every other point. Drawn only when the board has a paired
``x+ap`` cell.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from benchmark.report.plots.seeds import collapsed, floor_marks, spread_legend, trusted_limits
from benchmark.report.plots.style import Style, figure_grid, figure_legend, figure_title, sparsity_axis
from benchmark.report.spread import spread_bounds

PANELS = [("ap_delta_top1", "Δ top-1 (pp)"), ("ap_delta_dnr", "Δ dynamic dead rate (pp)")]


def fig_ap_effect(cells: pd.DataFrame, style: Style) -> Figure | None:
    """The figure from the plot cells (board rows plus ``panel`` and ``series``)."""
    if "ap_seeds" not in cells:
        return None
    rows = cells[pd.to_numeric(cells["ap_seeds"], errors="coerce") > 0]
    if rows.empty:
        return None
    panels = sorted(rows["panel"].unique())
    fig, axes = figure_grid(len(panels), len(PANELS))
    marks = 0
    for i, panel in enumerate(panels):
        data = rows[rows["panel"] == panel]
        for j, (column, label) in enumerate(PANELS):
            marks += _panel(axes[i, j], data, column, style)
            axes[i, j].set_ylabel(f"{label}; linear")
            axes[i, j].set_title(panel if len(panels) > 1 else label.split(" (")[0], fontsize="medium")
    notes = spread_legend(rows.assign(n_seeds=rows["ap_seeds"]), marks, seeds_drawn=False)
    figure_legend(fig, list(axes.flat), notes)
    figure_title(fig, ["AP effect: x+ap − x, paired by seed", "(left: Δ top-1; right: Δ dynamic dead rate)"],
                 len(PANELS))
    return fig


def _bars(group: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper end of each cell's bar (pp): ± the paired CI from 3 pairs, else min–max."""
    pairs = [spread_bounds(row, column, count="ap_seeds") for _, row in group.iterrows()]
    return (100 * np.array([p[0] for p in pairs], dtype=float),
            100 * np.array([p[1] for p in pairs], dtype=float))


def _panel(ax: Axes, data: pd.DataFrame, column: str, style: Style) -> int:
    targets = np.sort(data["target_sparsity"].dropna().unique().astype(float))
    logit_axis = bool(len(targets)) and ((targets > 0) & (targets < 1)).all()
    methods = sorted(data["method"].astype(str).unique())
    trusted, below = [0.0], []
    for k, method in enumerate(methods):
        group = data[data["method"].astype(str) == method].sort_values("target_sparsity")
        x = group["target_sparsity"].to_numpy(float)
        shift = 0.06 * (k - (len(methods) - 1) / 2)  # side by side, in the axis' own units
        x = 1 / (1 + np.exp(-(np.log(x / (1 - x)) + shift))) if logit_axis else x + shift / 10
        y = 100 * pd.to_numeric(group[column], errors="coerce").to_numpy(float)
        low, high = _bars(group, column)
        color = style.color.get(method, "0.3")
        ax.errorbar(x, y, yerr=[np.nan_to_num(y - low), np.nan_to_num(high - y)], color=color,
                    label=f"{method} − {group['ap_base'].iloc[0]}", marker=style.marker.get(method, "o"),
                    markersize=7, linewidth=1.6, capsize=4)
        for xi, yi, lo, hi, (_, row) in zip(x, y, low, high, group.iterrows()):
            if collapsed(row):
                below.append((xi, yi, color))
            else:
                trusted += [yi, lo, hi]
    ax.axhline(0, color="0.2", linewidth=1.0, zorder=0)
    sparsity_axis(ax, targets)
    low, high = trusted_limits(trusted, floor=0.0, pad=0.15, min_span=0.5)
    span = max(abs(low), abs(high))
    ax.set_ylim(-span, span)  # zero in the middle: the sign is the point
    return floor_marks(ax, below)
