"""Figure ``sparsity_vs_accuracy``: top-1 against measured sparsity, and below it Δ vs the reference.

Upper panel per data set / model: each method's mean top-1 per sparsity with its spread (95%
t-interval from three seeds, else min–max and the seeds themselves; :mod:`.seeds`), dense as a
dashed line. Lower panel: each method's top-1 minus the reference method's at the same seeds
(:mod:`benchmark.report.reference`), with the paired interval (or min–max of the per-seed
differences under three pairs) and the Holm-corrected significance marks of the leaderboard.
Runs at chance never set the y range; they are marked on the panel's floor.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from benchmark.report.catalog import DENSE_COLOR
from benchmark.report.markdown import significance
from benchmark.report.reference import reference_of
from benchmark.report.plots.seeds import (bounds, collapsed, draw_seed_points, floor_marks, shows_seeds,
                                          spread_legend, trusted_limits)
from benchmark.report.plots.style import (PANEL_H, PANEL_W, Style, figure_legend, figure_title,
                                          measured_sparsity, sparsity_axis)

DELTA_HEIGHT = 0.55  # the Δ panel's height relative to the accuracy panel


def fig_accuracy(cells: pd.DataFrame, style: Style, seeds: pd.DataFrame,
                 deltas: pd.DataFrame) -> Figure | None:
    """The figure from the plot cells, every complete run (:func:`.seeds.seed_frame`) and the per-seed
    differences to the reference (:func:`benchmark.report.reference.paired_deltas`)."""
    drawable = cells[cells["top1"].notna()]
    if drawable.empty:
        return None
    panels = sorted(drawable["panel"].unique())
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(PANEL_W * ncols, PANEL_H * (1 + DELTA_HEIGHT) * nrows + 0.5), layout="constrained")
    grid = fig.add_gridspec(2 * nrows, ncols, height_ratios=[1, DELTA_HEIGHT] * nrows)
    reference = reference_of(drawable)
    tops, n_floor = [], 0
    for k, panel in enumerate(panels):
        row, col = divmod(k, ncols)
        top = fig.add_subplot(grid[2 * row, col])
        bottom = fig.add_subplot(grid[2 * row + 1, col], sharex=top)
        data = drawable[drawable["panel"] == panel]
        n_floor += _accuracy_panel(top, data, style, seeds)
        n_floor += _delta_panel(bottom, data, style, deltas, reference)
        top.tick_params(labelbottom=False)
        bottom.set_xlabel(top.get_xlabel())
        top.set_xlabel("")
        tops.append(top)
    hollow = [Line2D([], [], marker="o", linestyle="none", markerfacecolor="white", markeredgecolor="0.3",
                     markersize=7, label="hollow marker: flagged cell\n(see leaderboard)")]
    flagged = (drawable["flag"].fillna("") != "").any()
    figure_legend(fig, tops, (hollow if flagged else []) + spread_legend(drawable, n_floor))
    figure_title(fig, ["Top-1 test accuracy vs. measured sparsity",
                       f"(lower panels: Δ vs. {reference or 'the reference'}, paired by seed)"], ncols)
    return fig


def _accuracy_panel(ax: Axes, cells: pd.DataFrame, style: Style, seeds: pd.DataFrame) -> int:
    """Draw one panel's accuracy curves; returns how many values had to be marked on the floor."""
    pruned, dense = cells[~cells["is_dense"]], cells[cells["is_dense"]]
    trusted, below = [], []
    for _, group in pruned.groupby("series", sort=True):
        group = group.assign(x=measured_sparsity(group)).sort_values("x")
        trusted += _accuracy_series(ax, group, style, seeds, below)
    for k, (_, cell) in enumerate(dense.sort_values("top1").iterrows()):
        y = 100 * cell["top1"]
        low, high = (100 * v for v in bounds(dense.loc[[cell.name]])[0:2])
        ax.axhline(y, zorder=1, label=cell["series"], **style.line(cell))
        # several dense references (other training settings) sit close: stack their labels
        ax.annotate(f"{cell['series']} {y:.2f}%", xy=(0.99, y), xycoords=ax.get_yaxis_transform(),
                    xytext=(0, 11 * k), textcoords="offset points", ha="right", va="bottom",
                    fontsize="small", color=DENSE_COLOR, zorder=5)
        if np.isfinite(low).all() and np.isfinite(high).all():
            ax.axhspan(float(low[0]), float(high[0]), color=DENSE_COLOR, alpha=0.12, linewidth=0, zorder=0)
        trusted += [y]
    sparsity_axis(ax, pruned["target_sparsity"].dropna().unique(),
                  measured_sparsity(pruned).dropna().to_numpy())
    ax.set_ylim(*trusted_limits(trusted))
    marks = floor_marks(ax, below)
    ax.set_ylabel("top-1 test accuracy (%; linear)")
    ax.set_title(cells["panel"].iloc[0])
    return marks


def _accuracy_series(ax: Axes, group: pd.DataFrame, style: Style, seeds: pd.DataFrame,
                     below: list[tuple]) -> list[float]:
    """One method's curve; returns the values that may set the y range, appends the rest to ``below``."""
    first = group.iloc[0]
    kwargs = style.line(first)
    color, marker = kwargs["color"], style.marker[first["series"]]
    x = group["x"].to_numpy(float)
    y = 100 * group["top1"].to_numpy(float)
    low, high = (100 * b for b in bounds(group))
    ax.plot(x, y, label=first["series"], marker=marker, markersize=7, markerfacecolor=color, zorder=3,
            **kwargs)
    if len(x) > 1:
        ax.fill_between(x, low, high, color=color, alpha=0.18, linewidth=0, zorder=2)
    else:  # one sparsity: a band has no width, so the spread is an error bar
        ax.errorbar(x, y, yerr=[np.nan_to_num(y - low), np.nan_to_num(high - y)], fmt="none", ecolor=color,
                    capsize=4, zorder=2)
    flagged = (group["flag"].fillna("") != "").to_numpy()
    if flagged.any():  # hollow markers on top of the filled ones
        ax.plot(x[flagged], y[flagged], linestyle="none", marker=marker, markersize=7,
                markerfacecolor="white", markeredgecolor=color, markeredgewidth=1.8, zorder=4)
    trusted = []
    for xi, yi, lo, hi, (_, cell) in zip(x, y, low, high, group.iterrows()):
        runs = seeds[seeds["cell_id"] == cell["cell_id"]]
        collapsed = bool(runs["at_chance"].any())
        fine = 100 * runs.loc[~runs["at_chance"].astype(bool), "top1"].to_numpy(float)
        if shows_seeds(cell):
            draw_seed_points(ax, xi, 100 * runs["top1"].to_numpy(float), color, marker)
        trusted += list(fine) + ([] if collapsed else [yi, lo, hi])
        below += [(xi, v, color) for v in [yi] + list(100 * runs.loc[runs["at_chance"].astype(bool), "top1"])]
    return trusted


def _delta_panel(ax: Axes, cells: pd.DataFrame, style: Style, deltas: pd.DataFrame,
                 reference: str | None) -> int:
    """Δ top-1 vs the reference per method and sparsity; returns how many values went to the floor."""
    pruned = cells[~cells["is_dense"] & cells["delta_vs_reference"].notna()]
    ax.axhline(0, color="0.2", linewidth=1.0, zorder=1)
    if reference:
        ax.annotate(f"{reference} (reference)", xy=(0.99, 0), xycoords=ax.get_yaxis_transform(), ha="right",
                    va="bottom", fontsize="x-small", color="0.2")
    trusted, below = [0.0], []
    for _, group in pruned.groupby("series", sort=True):
        group = group.assign(x=measured_sparsity(group)).sort_values("x")
        first = group.iloc[0]
        kwargs = style.line(first)
        color, marker = kwargs["color"], style.marker[first["series"]]
        x, y = group["x"].to_numpy(float), 100 * group["delta_vs_reference"].to_numpy(float)
        low, high = (100 * b for b in bounds(group, "delta_vs_reference", count="reference_pairs"))
        for yi, lo, hi, (_, cell) in zip(y, low, high, group.iterrows()):
            if shows_seeds(cell, count="reference_pairs"):
                per_seed = deltas.loc[deltas["cell_id"] == cell["cell_id"], "delta"].to_numpy(float)
                draw_seed_points(ax, float(cell["x"]), 100 * per_seed, color, marker)
            if collapsed(cell):
                below.append((float(cell["x"]), yi, color))
            else:
                trusted += [yi, lo, hi]
        ax.errorbar(x, y, yerr=[np.nan_to_num(y - low), np.nan_to_num(high - y)], color=color, marker=marker,
                    markersize=6, capsize=3, zorder=3, **{k: v for k, v in kwargs.items() if k != "color"})
        for xi, yi, hi, (_, cell) in zip(x, y, high, group.iterrows()):
            marks = significance(cell.get("p_holm"))
            if marks:
                ax.annotate(marks, xy=(xi, hi if math.isfinite(hi) else yi), xytext=(0, 1),
                            textcoords="offset points", ha="center", va="bottom", color=color,
                            fontsize="small")
    ax.set_ylim(*trusted_limits(trusted, floor=0.0, pad=0.15, min_span=0.5))
    marks = floor_marks(ax, below)
    ax.set_ylabel(f"Δ vs. {reference or 'ref.'} (pp; linear)")
    return marks
