"""Figure ``dead_units.png``: the dead-unit rate over training, one line per method, one panel per
sparsity.

The rate is the per-epoch ``dead_units`` history entry: units (conv channels, hidden neurons)
whose output never exceeds 0 on the fixed training probe, eval mode (see
:mod:`benchmark.probe`). It shows every method, so DNR/DemP's structured deaths sit beside the
units that die on their own under magnitude pruning. Built with the helpers of
:mod:`benchmark.plots`, which calls :func:`fig_dead_units`.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from benchmark.plots import (_dead_rate_panel, _history_frame, _legend, _ncols, _panel_grid, _pct_label,
                             _Style, _suptitle, _target_panels, _unify_ylim)

FIGURE_NAME = "dead_units.png"


def dead_unit_rate(entry: dict[str, Any]) -> Any:
    """The rate of a history entry's ``dead_units`` (None when the run did not record it)."""
    value = entry.get("dead_units")
    return value.get("rate") if isinstance(value, dict) else None


def fig_dead_units(cells: pd.DataFrame, style: _Style, results: list[dict],
                   run_cell: dict[str, str]) -> Figure | None:
    history = _history_frame(results, run_cell, value=dead_unit_rate)
    if history.empty:
        return None
    data = history.merge(cells, on="cell_id")
    fig, places = _panel_grid(_target_panels(data), ncols_max=3)
    for ax, panel, target, col in places:
        _dead_rate_panel(ax, data[data["panel"] == panel], target, style)
        ax.set_title(panel if target is None else f"{panel}, target {_pct_label(target)}")
        ax.set_ylabel("dead units (%)" if col == 0 else "")
    for panel in {p for _, p, _, _ in places}:
        _unify_ylim([ax for ax, p, _, _ in places if p == panel])
    _legend(fig, [ax for ax, _, _, _ in places])
    title = ["Dead units during training: channels/neurons never active",
             "on a fixed probe of training images (eval mode; mean over seeds, band = min–max)"]
    _suptitle(fig, title, _ncols(places))
    return fig
