"""Figure ``layer_sparsity.png``: per-layer sparsity after training, one panel per sparsity.

Grouped bars (up to :data:`.style.BAR_LAYER_LIMIT` layers, lines beyond), one colour per method,
the whole-model target dotted, in the figures' one style (:mod:`.style`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from benchmark.report.plots.style import (BAR_LAYER_LIMIT, HATCHES, PANEL_H, PANEL_W, Style, column_count,
                                          figure_legend, figure_title, panel_grid, pct_label, target_panels)


def _layer_frame(results: list[dict], run_cell: dict[str, str]) -> pd.DataFrame:
    """Long frame: cell_id, run_id, layer, order (position in the stored dict), value."""
    rows = [{"cell_id": run_cell[r["run_id"]], "run_id": r["run_id"], "layer": name, "order": i,
             "value": value}
            for r in results for i, (name, value) in enumerate((r.get("layer_sparsity") or {}).items())]
    frame = pd.DataFrame(rows, columns=["cell_id", "run_id", "layer", "order", "value"])
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return frame.dropna(subset=["value"])


def fig_layers(cells: pd.DataFrame, style: Style, results: list[dict],
               run_cell: dict[str, str]) -> Figure | None:
    """Per-layer sparsity after training, one panel per sparsity (None when nothing to draw)."""
    data = _layer_frame(results, run_cell).merge(cells, on="cell_id")
    data = data[~data["is_dense"]]
    if data.empty:
        return None
    n_layers = int(data.groupby("panel")["layer"].nunique().max())
    wide = n_layers > 6
    fig, places = panel_grid(target_panels(data), ncols_max=2 if wide else 3,
                             panel_w=max(PANEL_W, 0.42 * n_layers + 1.5),
                             panel_h=PANEL_H + (0.8 if wide else 0))
    for ax, panel, target, col in places:
        rows = data[data["panel"] == panel]
        _layer_panel(ax, rows[rows["target_sparsity"] == target], _layer_order(rows), target, style)
        ax.set_title(f"{panel}, target {pct_label(target)}")
        ax.set_ylabel("layer sparsity (% zero weights; linear)" if col == 0 else "")
    target_line = Line2D([], [], color="0.2", linestyle=":", linewidth=1.4, label="target (whole model)")
    figure_legend(fig, [ax for ax, _, _, _ in places], [target_line])
    figure_title(fig, ["Per-layer sparsity after training", "(mean over seeds)"], column_count(places))
    return fig


def _layer_order(rows: pd.DataFrame) -> list[str]:
    """Layers in stored order (first appearance, by position in each run's dict)."""
    first = rows.groupby("layer")["order"].min().sort_values(kind="mergesort")
    return list(first.index)


def _short(name: str) -> str:
    return name.removesuffix(".weight")


def _layer_panel(ax: Axes, rows: pd.DataFrame, order: list[str], target: float, style: Style) -> None:
    series = sorted(rows["series"].unique())
    x = np.arange(len(order))
    width = 0.8 / max(1, len(series))
    if len(order) <= BAR_LAYER_LIMIT:
        ax.grid(False, axis="x")
    for k, name in enumerate(series):
        group = rows[rows["series"] == name]
        mean = group.groupby("layer")["value"].mean().reindex(order) * 100
        color = style.color[group["method"].iloc[0]]
        if len(order) <= BAR_LAYER_LIMIT:
            hatch = HATCHES[int(group["config_index"].iloc[0]) % len(HATCHES)]
            ax.bar(x - 0.4 + width * (k + 0.5), mean.to_numpy(), width=width, color=color, label=name,
                   edgecolor="white", linewidth=0.5, hatch=hatch)
        else:
            ax.plot(x, mean.to_numpy(), marker=style.marker[name], markersize=5,
                    label=name, **style.line(group.iloc[0]))
    ax.axhline(100 * target, color="0.2", linestyle=":", linewidth=1.4, zorder=0)
    ax.set_xticks(x, [_short(n) for n in order], rotation=45 if len(order) > 4 else 0,
                  ha="right" if len(order) > 4 else "center")
    ax.set_ylim(0, 104)
    ax.yaxis.set_major_locator(ticker.MultipleLocator(20))
    ax.set_xlabel("layer (input → output)")
