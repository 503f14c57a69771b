"""Figure ``dead_units.png``: the dead-unit rate over training, one line per method, one panel per
sparsity.

The rate is the per-epoch ``dead_units`` history entry: units (conv channels, hidden neurons)
whose output never exceeds 0 on the fixed training probe, eval mode (see
:mod:`benchmark.engine.probe`). It shows every method, so DNR/DemP's structured deaths sit beside the
units that die on their own under magnitude pruning. Drawn like the dynamic dead-rate figure
(:mod:`.dead_rate`).
"""
from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from benchmark.report.plots.dead_rate import fig_dead_rate
from benchmark.report.plots.style import Style, history_frame

FIGURE_NAME = "dead_units.png"
TITLE = ["Dead units during training: channels/neurons never active",
         "on a fixed probe of training images (eval mode; mean over seeds, band = min–max)"]


def dead_unit_rate(entry: dict[str, Any]) -> Any:
    """The rate of a history entry's ``dead_units`` (None when the run did not record it)."""
    value = entry.get("dead_units")
    return value.get("rate") if isinstance(value, dict) else None


def fig_dead_units(cells: pd.DataFrame, style: Style, results: list[dict],
                   run_cell: dict[str, str]) -> Figure | None:
    history = history_frame(results, run_cell, value=dead_unit_rate)
    return fig_dead_rate(cells, style, history, ylabel="dead units (%; linear)", title=TITLE)
