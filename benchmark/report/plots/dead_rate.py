"""Figure ``dead_rate_dynamic.png``: the dynamic dead-neuron rate over training, one panel per sparsity.

The rate is AP's dynamic dead neuron rate (zero post-activation entries on the training batches of
an epoch); :mod:`.dead_units` draws its structural counterpart with the same layout.
"""
from __future__ import annotations

import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from benchmark.report.plots.style import (Style, column_count, figure_legend, figure_title, panel_grid,
                                          pct_label, target_panels, unify_ylim)


def fig_dead_rate(cells: pd.DataFrame, style: Style, history: pd.DataFrame,
                  ylabel: str = "dynamic dead rate (%; linear)",
                  title: list[str] | None = None) -> Figure | None:
    if history.empty:
        return None
    data = history.merge(cells, on="cell_id")
    fig, places = panel_grid(target_panels(data), ncols_max=3)
    for ax, panel, target, col in places:
        _dead_rate_panel(ax, data[data["panel"] == panel], target, style)
        ax.set_title(panel if target is None else f"{panel}, target {pct_label(target)}")
        ax.set_ylabel(ylabel if col == 0 else "")
    for panel in {p for _, p, _, _ in places}:
        unify_ylim([ax for ax, p, _, _ in places if p == panel])
    figure_legend(fig, [ax for ax, _, _, _ in places])
    title = title or ["Dynamic dead-neuron rate during training:",
                      "zero post-activation entries on training batches",
                      "(mean over seeds, band = min–max; dense = reference)"]
    figure_title(fig, title, column_count(places))
    return fig


def _dead_rate_panel(ax: Axes, rows: pd.DataFrame, target: float | None, style: Style) -> None:
    shown = rows[rows["is_dense"] | (rows["target_sparsity"] == target)]
    for series, group in shown.groupby("series", sort=True):
        stat = group.groupby("epoch")["value"].agg(["mean", "min", "max"]).sort_index() * 100
        kwargs = style.line(group.iloc[0])
        ax.plot(stat.index, stat["mean"], label=series, zorder=3, **kwargs)
        ax.fill_between(stat.index, stat["min"], stat["max"], color=kwargs["color"], alpha=0.15,
                        linewidth=0, zorder=2)
    ax.set_xlabel("epoch (linear)")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
