"""Figure ``delta_forest``: each method's Δ top-1 against the reference, per sparsity, as a forest plot.

One axes per (data set / model, target sparsity); a row per method, sorted by Δ; the point is the
mean per-seed difference to the reference (:mod:`benchmark.report.reference`), the bar its paired
95% t-interval (three or more paired seeds) or the min–max of the differences with each seed drawn
(fewer). A filled marker is significant after Holm's correction (p < 0.05; ``*``/``**`` beside it),
a hollow one is not. A cell with a run at chance does not set the x range: it is drawn at the
left edge with its value.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from benchmark.report.markdown import significance
from benchmark.report.reference import reference_of
from benchmark.report.plots.seeds import (SEED_MARKER_SIZE, collapsed, shows_seeds, spread_legend,
                                          trusted_limits)
from benchmark.report.plots.style import Style, figure_title, panel_grid, pct_label
from benchmark.report.spread import spread_bounds

ROW_HEIGHT = 0.42


def fig_delta_forest(cells: pd.DataFrame, style: Style, deltas: pd.DataFrame) -> Figure | None:
    """The figure from the plot cells and the per-seed differences to the reference; None without any Δ."""
    data = cells[~cells["is_dense"] & cells["delta_vs_reference"].notna()]
    if data.empty:
        return None
    layout = [(panel, sorted(group["target_sparsity"].dropna().unique()))
              for panel, group in data.groupby("panel", sort=True)]
    rows = max(group["series"].nunique() for _, group in data.groupby("panel"))
    fig, places = panel_grid(layout, ncols_max=3, panel_w=4.6, panel_h=ROW_HEIGHT * rows + 1.3)
    for ax, panel, target, _ in places:
        _forest(ax, data[(data["panel"] == panel) & (data["target_sparsity"] == target)], style, deltas)
        ax.set_title(f"{panel} @ {pct_label(target)}", fontsize="medium")
    reference = reference_of(data) or "the reference"
    legend = [Line2D([], [], linestyle="none", marker="o", color="0.3", label="significant (Holm p < 0.05)"),
              Line2D([], [], linestyle="none", marker="o", markerfacecolor="white", markeredgecolor="0.3",
                     label="not significant")] + spread_legend(data)
    fig.legend(handles=legend, loc="outside lower center", ncols=min(3, len(legend)), fontsize="small")
    figure_title(fig, [f"Δ top-1 vs. {reference} (pp), paired by seed",
                       "(* / ** : Holm-corrected p < 0.05 / 0.01)"],
                 min(3, max(len(t) for _, t in layout)))
    return fig


def _forest(ax: Axes, rows: pd.DataFrame, style: Style, deltas: pd.DataFrame) -> None:
    rows = rows.sort_values("delta_vs_reference")
    ax.axvline(0, color="0.2", linewidth=1.0, zorder=1)
    trusted, outside = [0.0], []
    for i, (_, cell) in enumerate(rows.iterrows()):
        color, marker = style.color[cell["method"]], style.marker[cell["series"]]
        mean = 100 * cell["delta_vs_reference"]
        low, high = (100 * b for b in spread_bounds(cell, "delta_vs_reference", count="reference_pairs"))
        if shows_seeds(cell, count="reference_pairs"):
            per_seed = 100 * deltas.loc[deltas["cell_id"] == cell["cell_id"], "delta"].to_numpy(float)
            ax.plot(per_seed, np.full(len(per_seed), i), linestyle="none", marker=marker,
                    markersize=SEED_MARKER_SIZE, markerfacecolor="white", markeredgecolor=color, zorder=4)
        significant = bool(significance(cell.get("p_holm")))
        if math.isfinite(low) and math.isfinite(high):
            ax.hlines(i, low, high, color=color, linewidth=2.2, zorder=2)
        ax.plot([mean], [i], linestyle="none", marker=marker, markersize=SEED_MARKER_SIZE + 4,
                markerfacecolor=color if significant else "white", markeredgecolor=color, markeredgewidth=1.6,
                zorder=3)
        marks = significance(cell.get("p_holm"))
        ax.annotate(f"{mean:+.2f}{marks}", xy=(high if math.isfinite(high) else mean, i), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize="x-small", color=color)
        if collapsed(cell):
            outside.append((i, mean, color))
        else:
            trusted += [mean, low, high]
    low, high = trusted_limits(trusted, floor=0.0, pad=0.25, min_span=0.5)
    ax.set_xlim(low, high)
    for i, mean, color in outside:
        if mean < low:
            ax.annotate(f"◀ {mean:+.1f}", xy=(0.0, i), xycoords=ax.get_yaxis_transform(), va="center",
                        fontsize="x-small", color=color)
    ax.set_yticks(range(len(rows)), rows["series"].tolist())
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("Δ top-1 (pp; linear)")
    ax.grid(axis="y", visible=False)
