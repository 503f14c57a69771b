"""``plots/ap_effect.png``: what AP changes, per base method and target sparsity.

One row per dataset/model, two panels: Δ top-1 and Δ dynamic dead-neuron rate of ``x+ap`` minus
``x`` (percentage points, mean over paired seeds, error bar = paired 95% CI; see
:mod:`benchmark.report.ap_effect`). AP's premise is a point below zero on the right and above zero on
the left. Drawn only when the board has a paired ``x+ap`` cell.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchmark.report.plots.style import figure_grid, figure_legend, figure_title, sparsity_axis

PANELS = [("ap_delta_top1", "Δ top-1 (pp)"), ("ap_delta_dnr", "Δ dynamic DNR (pp)")]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]


def fig_ap_effect(cells: pd.DataFrame, colors: dict[str, object]) -> Figure | None:
    """The figure from the plot cells (board rows plus ``panel``); ``colors`` maps method labels."""
    if "ap_seeds" not in cells:
        return None
    rows = cells[pd.to_numeric(cells["ap_seeds"], errors="coerce") > 0]
    if rows.empty:
        return None
    panels = sorted(rows["panel"].unique())
    fig, axes = figure_grid(len(panels), len(PANELS))
    bases = sorted(rows["ap_base"].astype(str).unique())
    for i, panel in enumerate(panels):
        data = rows[rows["panel"] == panel]
        for j, (column, label) in enumerate(PANELS):
            _panel(axes[i, j], data, column, bases, colors)
            axes[i, j].set_ylabel(label)
            axes[i, j].set_title(f"{panel}: {label.split(' (')[0]}")
    figure_legend(fig, list(axes.flat))
    figure_title(fig, ["AP effect: x+ap − x per base and target sparsity",
                       "(mean over paired seeds ± 95% CI of the per-seed differences)"], len(PANELS))
    return fig


def _panel(ax, data: pd.DataFrame, column: str, bases: list[str], colors: dict[str, object]) -> None:
    targets = np.sort(data["target_sparsity"].dropna().unique().astype(float))
    logit_axis = bool(len(targets)) and ((targets > 0) & (targets < 1)).all()
    for k, base in enumerate(bases):
        group = data[data["ap_base"].astype(str) == base].sort_values("target_sparsity")
        if group.empty:
            continue
        x = group["target_sparsity"].to_numpy(float)
        shift = 0.06 * (k - (len(bases) - 1) / 2)  # side by side, in the axis' own units
        x = 1 / (1 + np.exp(-(np.log(x / (1 - x)) + shift))) if logit_axis else x + shift / 10
        y = 100 * pd.to_numeric(group[column], errors="coerce").to_numpy(float)
        ci = 100 * pd.to_numeric(group[f"{column}_ci95"], errors="coerce").to_numpy(float)
        method = str(group["method"].iloc[0])
        ax.errorbar(x, y, yerr=np.where(np.isnan(ci), 0, ci), label=f"{method} − {base}",
                    color=colors.get(base, colors.get(method, "0.3")), marker=MARKERS[k % len(MARKERS)],
                    markersize=7, linewidth=1.6, capsize=4)
    ax.axhline(0, color="0.2", linewidth=1.0, zorder=0)
    sparsity_axis(ax, targets)
    low, high = ax.get_ylim()
    span = max(abs(low), abs(high), 0.5 if math.isfinite(low) else 1.0)
    ax.set_ylim(-1.1 * span, 1.1 * span)  # zero in the middle: the sign is the point
