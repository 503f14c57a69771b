"""Figure ``sparsity_vs_accuracy.png``: top-1 test accuracy against measured sparsity, mean ± 95% CI."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from benchmark.report.plots.style import (DENSE_COLOR, Style, drop_unused, figure_grid, figure_legend,
                                          figure_title, measured_sparsity, sparsity_axis)


def fig_accuracy(cells: pd.DataFrame, style: Style) -> Figure | None:
    drawable = cells[cells["top1"].notna()]
    if drawable.empty:
        return None
    panels = sorted(drawable["panel"].unique())
    ncols = min(3, len(panels))
    fig, axes = figure_grid(math.ceil(len(panels) / ncols), ncols)
    flat = list(axes.flat)
    for ax, panel in zip(flat, panels):
        _accuracy_panel(ax, drawable[drawable["panel"] == panel], style)
    drop_unused(fig, axes, {divmod(i, ncols) for i in range(len(panels))})
    hollow = [Line2D([], [], marker="o", linestyle="none", markerfacecolor="white", markeredgecolor="0.3",
                     markersize=7, label="hollow marker: flagged cell\n(see leaderboard)")]
    figure_legend(fig, flat[:len(panels)], hollow if (drawable["flag"].fillna("") != "").any() else [])
    figure_title(fig, ["Top-1 test accuracy vs. measured sparsity", "(mean ± 95% CI over seeds)"], ncols)
    return fig


def _accuracy_panel(ax: Axes, cells: pd.DataFrame, style: Style) -> None:
    pruned, dense = cells[~cells["is_dense"]], cells[cells["is_dense"]]
    for _, group in pruned.groupby("series", sort=True):
        _accuracy_series(ax, group.assign(x=measured_sparsity(group)).sort_values("x"), style)
    for k, (_, cell) in enumerate(dense.sort_values("top1").iterrows()):
        y, ci = 100 * cell["top1"], 100 * np.nan_to_num(cell["top1_ci95"])
        ax.axhline(y, zorder=1, label=cell["series"], **style.line(cell))
        # several dense references (other training settings) sit close: stack their labels
        ax.annotate(f"{cell['series']} {y:.2f}%", xy=(0.99, y), xycoords=ax.get_yaxis_transform(),
                    xytext=(0, 11 * k), textcoords="offset points", ha="right", va="bottom",
                    fontsize="small", color=DENSE_COLOR, zorder=5)
        if ci > 0:
            ax.axhspan(y - ci, y + ci, color=DENSE_COLOR, alpha=0.12, linewidth=0, zorder=0)
    sparsity_axis(ax, pruned["target_sparsity"].dropna().unique(),
                  measured_sparsity(pruned).dropna().to_numpy())
    ax.set_ylabel("top-1 test accuracy (%)")
    ax.set_title(cells["panel"].iloc[0])


def _accuracy_series(ax: Axes, group: pd.DataFrame, style: Style) -> None:
    first = group.iloc[0]
    kwargs = style.line(first)
    x = group["x"].to_numpy(float)
    y = 100 * group["top1"].to_numpy(float)
    ci = 100 * group["top1_ci95"].to_numpy(float)
    ax.plot(x, y, label=first["series"], marker=style.marker[first["series"]], markersize=7,
            markerfacecolor=kwargs["color"], zorder=3, **kwargs)
    if len(x) > 1:
        ax.fill_between(x, y - ci, y + ci, color=kwargs["color"], alpha=0.18, linewidth=0, zorder=2)
    else:  # one sparsity: a band has no width, so the CI is an error bar
        ax.errorbar(x, y, yerr=np.nan_to_num(ci), fmt="none", ecolor=kwargs["color"], capsize=4, zorder=2)
    flagged = (group["flag"].fillna("") != "").to_numpy()
    if flagged.any():  # hollow markers on top of the filled ones
        ax.plot(x[flagged], y[flagged], linestyle="none", marker=style.marker[first["series"]], markersize=7,
                markerfacecolor="white", markeredgecolor=kwargs["color"], markeredgewidth=1.8, zorder=4)
