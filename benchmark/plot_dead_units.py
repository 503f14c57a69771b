"""Figure ``dead_units.png``: the dead-unit rate over training, one line per method, one panel per
sparsity.

The rate is the per-epoch ``dead_units`` history entry: units (conv channels, hidden neurons)
whose output never exceeds 0 on the fixed training probe, eval mode (see
:mod:`benchmark.probe`). It shows every method, so DNR/DemP's structured deaths sit beside the
units that die on their own under magnitude pruning. Drawn like the dynamic dead-rate figure of
:mod:`benchmark.plots`, which calls :func:`fig_dead_units`.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from benchmark.plots import _fig_dead_rate, _history_frame, _Style

FIGURE_NAME = "dead_units.png"
TITLE = ["Dead units during training: channels/neurons never active",
         "on a fixed probe of training images (eval mode; mean over seeds, band = min–max)"]


def dead_unit_rate(entry: dict[str, Any]) -> Any:
    """The rate of a history entry's ``dead_units`` (None when the run did not record it)."""
    value = entry.get("dead_units")
    return value.get("rate") if isinstance(value, dict) else None


def fig_dead_units(cells: pd.DataFrame, style: _Style, results: list[dict],
                   run_cell: dict[str, str]) -> Figure | None:
    history = _history_frame(results, run_cell, value=dead_unit_rate)
    return _fig_dead_rate(cells, style, history, ylabel="dead units (%)", title=TITLE)
