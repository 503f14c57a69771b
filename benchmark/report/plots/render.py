"""Every report figure at once: PNG bytes keyed by file name, drawn in one style."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd
from matplotlib.figure import Figure

from benchmark.report.cells import cell_keys
from benchmark.report.plots.accuracy import fig_accuracy
from benchmark.report.plots.ap_effect import fig_ap_effect
from benchmark.report.plots.dead_rate import fig_dead_rate
from benchmark.report.plots.dead_units import fig_dead_units
from benchmark.report.plots.layers import fig_layers
from benchmark.report.plots.style import Style, figure_cells, history_frame, rc_context, to_png
from benchmark.store.files import atomic_write_bytes

FIGURE_NAMES = ("sparsity_vs_accuracy.png", "dead_rate_dynamic.png", "layer_sparsity.png", "dead_units.png",
                "ap_effect.png")


def plot_all(runs: pd.DataFrame, results: list[dict], board: pd.DataFrame, plot_dir: Path) -> list[Path]:
    """Draw every figure that has data into ``plot_dir`` (atomic writes); returns the paths written."""
    figures = render_figures(runs, results, board)
    return [atomic_write_bytes(Path(plot_dir) / name, data) for name, data in figures.items()]


def render_figures(runs: pd.DataFrame, results: list[dict], board: pd.DataFrame) -> dict[str, bytes]:
    """PNG bytes of each figure that has something to draw, keyed by file name (nothing on disk)."""
    if board.empty:
        return {}
    cells = figure_cells(board)
    style = Style(cells)
    run_cell = dict(zip(runs["run_id"], cell_keys(runs))) if not runs.empty else {}
    complete = [r for r in results if r.get("status") == "complete" and r.get("run_id") in run_cell]
    builders: dict[str, Callable[[], Figure | None]] = {
        FIGURE_NAMES[0]: lambda: fig_accuracy(cells, style),
        FIGURE_NAMES[1]: lambda: fig_dead_rate(cells, style, history_frame(complete, run_cell)),
        FIGURE_NAMES[2]: lambda: fig_layers(cells, style, complete, run_cell),
        FIGURE_NAMES[3]: lambda: fig_dead_units(cells, style, complete, run_cell),
        FIGURE_NAMES[4]: lambda: fig_ap_effect(cells, style.color),
    }
    figures = {}
    with rc_context():
        for name, build in builders.items():
            fig = build()
            if fig is not None:
                figures[name] = to_png(fig)
    return figures
