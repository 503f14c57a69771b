"""Figures ``pareto_macs`` and ``accuracy_vs_cost``: top-1 against what it costs.

``pareto_macs``: one axes per data set / model, every cell's top-1 against its theoretical inference
MACs (non-zero weights × output positions, as % of the dense model; log axis), with the Pareto
front — the cells no other cell beats on both accuracy and MACs — joined by a black step line,
ringed and labelled. ``accuracy_vs_cost``: one axes per data set / model and target sparsity (dense
in each), each method's top-1 against the training epochs one run actually spent (log axis): its
own epochs — IMP's rounds included — plus its cell's calibration search (gRDA's c, DemP's λ
probes). The vertical bar is a cell's spread (:mod:`.seeds`). Cells with a run at chance do not
set the y range and are marked on the floor.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from benchmark.report.plots.seeds import collapsed, bounds, floor_marks, spread_legend, trusted_limits
from benchmark.report.plots.style import (Style, drop_unused, figure_grid, figure_legend, figure_title,
                                          panel_grid, pct_label, target_panels)


def pareto_front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points no other point dominates (x no larger and y no smaller, one strictly),
    ordered by x: the frontier of 'cheaper and at least as accurate'."""
    order = sorted(range(len(x)), key=lambda i: (x[i], -y[i]))
    front, best = [], -math.inf
    for i in order:
        if y[i] > best:
            front.append(i)
            best = y[i]
    return np.array(front, dtype=int)


def fig_pareto_macs(cells: pd.DataFrame, style: Style) -> Figure | None:
    data = cells.assign(x=100 * pd.to_numeric(cells["macs_sparse_ratio"], errors="coerce"))
    data = data[data["top1"].notna() & data["x"].notna() & (data["x"] > 0)]
    if data.empty:
        return None
    panels = sorted(data["panel"].unique())
    ncols = min(3, len(panels))
    fig, axes = figure_grid(math.ceil(len(panels) / ncols), ncols)
    flat = list(axes.flat)
    marks = 0
    for ax, panel in zip(flat, panels):
        rows = data[data["panel"] == panel]
        marks += _points(ax, rows, style)
        front = pareto_front(rows["x"].to_numpy(float), 100 * rows["top1"].to_numpy(float))
        x, y = rows["x"].to_numpy(float)[front], 100 * rows["top1"].to_numpy(float)[front]
        ax.step(x, y, where="post", color="black", linewidth=1.0, zorder=2)
        ax.plot(x, y, linestyle="none", marker="o", markersize=13, markerfacecolor="none",
                markeredgecolor="black", markeredgewidth=1.0, zorder=4)
        for xi, yi, (_, cell) in zip(x, y, rows.iloc[front].iterrows()):
            text = "dense" if cell["is_dense"] else f"{cell['series']} @ {pct_label(cell['target_sparsity'])}"
            ax.annotate(text, xy=(xi, yi), xytext=(6, -10), textcoords="offset points", fontsize="x-small")
        _log_x(ax, rows["x"].to_numpy(float))
        ax.set_xlabel("inference MACs (% of dense; log scale)")
        ax.set_title(panel)
    drop_unused(fig, axes, {divmod(i, ncols) for i in range(len(panels))})
    front = Line2D([], [], color="black", linewidth=1.0, marker="o", markerfacecolor="none", markersize=11,
                   label="Pareto front (labelled): no other cell has fewer MACs and higher top-1")
    figure_legend(fig, flat[:len(panels)], [front] + spread_legend(data, marks, seeds_drawn=False))
    figure_title(fig, ["Top-1 test accuracy vs. theoretical inference MACs"], ncols)
    return fig


def fig_accuracy_vs_cost(cells: pd.DataFrame, style: Style) -> Figure | None:
    """One axes per data set / model and target sparsity: each method's top-1 against its epochs spent."""
    data = cells.assign(x=pd.to_numeric(cells["epochs_spent"], errors="coerce"))
    data = data[data["top1"].notna() & data["x"].notna() & (data["x"] > 0)]
    pruned = data[~data["is_dense"]]
    if pruned.empty:
        return None
    fig, places = panel_grid(target_panels(pruned), ncols_max=3)
    marks = 0
    for ax, panel, target, _ in places:
        rows = data[(data["panel"] == panel) & ((data["target_sparsity"] == target) | data["is_dense"])]
        marks += _points(ax, rows, style)
        _log_x(ax, data.loc[data["panel"] == panel, "x"].to_numpy(float))
        ax.set_xlabel("training epochs per run (log scale;\nIMP rounds and search probes included)")
        ax.set_title(f"{panel} @ {pct_label(target)}", fontsize="medium")
    figure_legend(fig, [ax for ax, *_ in places], spread_legend(data, marks, seeds_drawn=False))
    figure_title(fig, ["Top-1 test accuracy vs. training cost"], min(3, len(places)))
    return fig


def _log_x(ax: Axes, x: np.ndarray) -> None:
    """Log x axis padded on both sides: a labelled tick at each distinct value when there are at most
    six, else at 1-2-5 steps."""
    values = np.unique(np.round(x[np.isfinite(x)], 6))
    ax.set_xscale("log")
    ax.set_xlim(values.min() / 1.4, values.max() * 1.4)
    if len(values) <= 6:
        ax.xaxis.set_major_locator(ticker.FixedLocator(values))
    else:
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.xaxis.set_minor_locator(ticker.NullLocator())


def _points(ax: Axes, cells: pd.DataFrame, style: Style) -> int:
    """One point per cell at (x, top-1) with its spread; returns how many went to the floor."""
    x = cells["x"].to_numpy(float)
    y = 100 * cells["top1"].to_numpy(float)
    low, high = (100 * b for b in bounds(cells))
    trusted, below = [], []
    for xi, yi, lo, hi, (_, cell) in zip(x, y, low, high, cells.iterrows()):
        color, marker = style.color[cell["method"]], style.marker[cell["series"]]
        ax.errorbar([xi], [yi], yerr=[[np.nan_to_num(yi - lo)], [np.nan_to_num(hi - yi)]], color=color,
                    marker=marker, markersize=7, capsize=3, linestyle="none", label=cell["series"], zorder=3)
        if collapsed(cell):
            below.append((xi, yi, color))
        else:
            trusted += [yi, lo, hi]
    ax.set_ylim(*trusted_limits(trusted))
    ax.set_ylabel("top-1 test accuracy (%; linear)")
    return floor_marks(ax, below)
