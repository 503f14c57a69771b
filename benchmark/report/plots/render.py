"""Every report figure at once: PNG and PDF bytes keyed by file name, drawn in one style."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd
from matplotlib.figure import Figure

from benchmark.report.cells import cell_keys
from benchmark.report.leaderboard import with_train_config
from benchmark.report.plots.accuracy import fig_accuracy
from benchmark.report.plots.compute import fig_accuracy_vs_cost, fig_pareto_macs
from benchmark.report.plots.delta_forest import fig_delta_forest
from benchmark.report.plots.ap_effect import fig_ap_effect
from benchmark.report.plots.dead_rate import fig_dead_rate
from benchmark.report.plots.dead_units import fig_dead_units
from benchmark.report.plots.layers import fig_layers
from benchmark.report.plots.seeds import seed_frame
from benchmark.report.plots.style import Style, figure_cells, history_frame, rc_context, to_pdf, to_png
from benchmark.report.reference import paired_deltas, reference_of
from benchmark.store.files import atomic_write_bytes

#: Every figure, by file stem, with the caption the HTML report prints under it.
FIGURE_CAPTIONS = {
    "sparsity_vs_accuracy": "Top-1 test accuracy against measured sparsity per method; the lower panel is "
                            "each method's difference to the reference method, paired by seed.",
    "delta_forest": "Δ top-1 against the reference method at each sparsity, paired by seed, with its paired "
                    "interval; filled markers: significant after Holm's correction.",
    "pareto_macs": "Top-1 against theoretical inference MACs (log axis); the Pareto front is marked.",
    "accuracy_vs_cost": "Top-1 against the training epochs each run actually spent (IMP's rounds and "
                        "calibration probes included).",
    "dead_rate_dynamic": "Dynamic dead-neuron rate over training.",
    "layer_sparsity": "Final sparsity of each prunable layer.",
    "dead_units": "Dead hidden units over training, on the fixed probe.",
    "ap_effect": "AP's effect: each x+ap against its base x, paired by seed.",
}
#: Every file a report may write under plots/: each figure as PNG and as PDF.
FIGURE_NAMES = tuple(f"{stem}.{ext}" for stem in FIGURE_CAPTIONS for ext in ("png", "pdf"))


def plot_all(runs: pd.DataFrame, results: list[dict], board: pd.DataFrame, plot_dir: Path) -> list[Path]:
    """Draw every figure that has data into ``plot_dir`` (atomic writes); returns the paths written."""
    figures = render_figures(runs, results, board)
    return [atomic_write_bytes(Path(plot_dir) / name, data) for name, data in figures.items()]


def render_figures(runs: pd.DataFrame, results: list[dict], board: pd.DataFrame) -> dict[str, bytes]:
    """PNG and PDF bytes of each figure that has something to draw, keyed by file name (nothing on disk)."""
    if board.empty:
        return {}
    cells = figure_cells(board)
    style = Style(cells)
    keys = cell_keys(runs)
    run_cell = dict(zip(runs["run_id"], keys)) if not runs.empty else {}
    complete = [r for r in results if r.get("status") == "complete" and r.get("run_id") in run_cell]
    seeds = seed_frame(runs, keys)
    reference = reference_of(board)
    deltas = (paired_deltas(with_train_config(runs), keys, reference) if reference and not runs.empty
              else pd.DataFrame(columns=["cell_id", "seed", "delta"]))
    builders: dict[str, Callable[[], Figure | None]] = {
        "sparsity_vs_accuracy": lambda: fig_accuracy(cells, style, seeds, deltas),
        "delta_forest": lambda: fig_delta_forest(cells, style, deltas),
        "pareto_macs": lambda: fig_pareto_macs(cells, style),
        "accuracy_vs_cost": lambda: fig_accuracy_vs_cost(cells, style),
        "dead_rate_dynamic": lambda: fig_dead_rate(cells, style, history_frame(complete, run_cell)),
        "layer_sparsity": lambda: fig_layers(cells, style, complete, run_cell),
        "dead_units": lambda: fig_dead_units(cells, style, complete, run_cell),
        "ap_effect": lambda: fig_ap_effect(cells, style),
    }
    figures = {}
    with rc_context():
        for stem, build in builders.items():
            fig = build()
            if fig is not None:
                figures[f"{stem}.png"] = to_png(fig)
                figures[f"{stem}.pdf"] = to_pdf(fig)
    return figures
