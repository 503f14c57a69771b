"""One visual language: stable method colours, the < 3-seed rules, runs at chance, the new figures."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.text import Text

import methods
from benchmark.report import catalog
from benchmark.report.cells import cell_keys
from benchmark.report.latex import to_latex
from benchmark.report.leaderboard import at_chance, leaderboard, with_train_config
from benchmark.report.markdown import to_markdown
from benchmark.report.plots.accuracy import fig_accuracy
from benchmark.report.plots.ap_effect import fig_ap_effect
from benchmark.report.plots.compute import fig_accuracy_vs_cost, fig_pareto_macs, pareto_front
from benchmark.report.plots.delta_forest import fig_delta_forest
from benchmark.report.plots.render import FIGURE_CAPTIONS, render_figures
from benchmark.report.plots.seeds import SEED_MARKER_SIZE, seed_frame
from benchmark.report.plots.style import Style, darker, figure_cells, rc_context
from benchmark.report.reference import paired_deltas
from benchmark.report.spread import describe_board, format_top1, spread_bounds
from benchmark.store.run_store import results_frame
from tests.helpers import make_result

TWO_SEEDS = {("dense", 0.0): [0.90, 0.92], ("gmp", 0.5): [0.88, 0.90], ("gmp", 0.9): [0.84, 0.86],
             ("granet", 0.5): [0.89, 0.90], ("granet", 0.9): [0.85, 0.12],  # seed 1 collapsed (at chance)
             ("gmp+ap", 0.5): [0.885, 0.905], ("gmp+ap", 0.9): [0.845, 0.865]}


def grid(values: dict, methods_: set[str] | None = None) -> list[dict]:
    return [make_result(m, t, seed, top1) for (m, t), tops in values.items()
            if methods_ is None or m in methods_ for seed, top1 in enumerate(tops)]


def figure_inputs(results: list[dict]):
    runs = results_frame(results)
    board = leaderboard(runs)
    cells = figure_cells(board)
    deltas = paired_deltas(with_train_config(runs), cell_keys(runs), board["reference"].dropna().iloc[0])
    return board, cells, Style(cells), seed_frame(runs), deltas


# ---------------------------------------------------------------------------------------------- colours

def test_the_catalogue_holds_exactly_the_registered_methods():
    registered = {m for m in methods.available_methods() if not m.endswith(methods.ap.SUFFIX)}
    assert set(catalog.CATALOG) == registered
    assert catalog.AP_SUFFIX == methods.ap.SUFFIX
    pairs = [(info.color, info.marker) for info in catalog.CATALOG.values()]
    assert len(set(pairs)) == len(pairs)  # two methods never look the same
    assert len({info.color for info in catalog.CATALOG.values()}) == len(catalog.CATALOG)


def test_a_method_keeps_its_colour_and_marker_across_grids_with_different_methods():
    _, cells_a, style_a, *_ = figure_inputs(grid(TWO_SEEDS))
    _, cells_b, style_b, *_ = figure_inputs(grid({("gmp", 0.9): [0.8, 0.81], ("magnitude", 0.9): [0.7, 0.72],
                                                  ("dense", 0.0): [0.9, 0.9]}))
    assert style_a.color["gmp"] == style_b.color["gmp"] == to_rgb(catalog.CATALOG["gmp"].color)
    assert style_a.marker["gmp"] == style_b.marker["gmp"] == catalog.CATALOG["gmp"].marker
    assert style_b.color["magnitude"] == to_rgb(catalog.CATALOG["magnitude"].color)
    assert style_a.color["dense"] == style_b.color["dense"] == to_rgb(catalog.DENSE_COLOR)
    # x+ap: a darker shade of x, x's marker, a dashed line
    assert style_a.color["gmp+ap"] == pytest.approx(darker(catalog.CATALOG["gmp"].color, 0.35))
    assert style_a.marker["gmp+ap"] == catalog.CATALOG["gmp"].marker
    ap_row = cells_a[cells_a["method"] == "gmp+ap"].iloc[0]
    assert style_a.line(ap_row)["linestyle"] != "-"


def test_an_unknown_method_gets_a_stable_colour_from_its_name():
    assert catalog.visual("my-method") == catalog.visual("my-method")
    assert catalog.citation("gmp+ap")[0] == "Zhu & Gupta 2018; Liu et al. 2023"


# ---------------------------------------------------------------------------------------------- < 3 seeds

def test_spread_is_a_t_interval_from_three_seeds_and_the_range_below():
    two = pd.Series({"top1": 0.6836, "top1_ci95": 0.7897, "top1_min": 0.61, "top1_max": 0.7572, "n_seeds": 2})
    three = pd.Series({"top1": 0.85, "top1_ci95": 0.0248, "top1_min": 0.84, "top1_max": 0.86, "n_seeds": 3})
    one = pd.Series({"top1": 0.81, "top1_ci95": math.nan, "top1_min": 0.81, "top1_max": 0.81, "n_seeds": 1})
    assert format_top1(two) == "68.36 (61.00–75.72)"
    assert format_top1(three) == "85.00 ± 2.48"
    assert format_top1(one) == "81.00"
    assert spread_bounds(two) == (0.61, 0.7572)
    assert spread_bounds(three) == pytest.approx((0.85 - 0.0248, 0.85 + 0.0248))
    assert all(math.isnan(v) for v in spread_bounds(one))
    mixed = pd.DataFrame({"n_seeds": [3, 2]})
    assert describe_board(mixed) == ("mean ± 95% t-interval over seeds where ≥ 3 seeds; mean (min–max) over "
                                     "seeds (fewer than 3: no t-interval) where 2 seeds")


def test_tables_show_mean_min_max_under_three_seeds_never_a_t_interval():
    board = leaderboard(results_frame(grid(TWO_SEEDS)))
    markdown, latex = to_markdown(board), to_latex(board)
    gmp = next(line for line in markdown.splitlines()
               if [c.strip() for c in line.split("|")][3:5] == ["gmp", "90%"])
    assert "85.00 (84.00–86.00)" in gmp and "±" not in gmp
    granet = next(line for line in markdown.splitlines()
                  if [c.strip() for c in line.split("|")][3:5] == ["granet", "50%"])
    assert "+0.50 (+0.00–+1.00)" in granet and "±" not in granet  # Δ vs gmp: seeds +1.00 and +0.00 pp
    assert "mean (min–max) over seeds (fewer than 3: no t-interval)" in markdown
    assert r"85.00 (84.00--86.00)" in latex and r"$\pm$" not in latex.split(r"\caption")[0]
    assert "mean (min--max) over seeds" in latex


def test_figures_draw_each_seed_under_three_seeds():
    _, cells, style, seeds, deltas = figure_inputs(grid(TWO_SEEDS))
    with rc_context():
        fig = fig_accuracy(cells, style, seeds, deltas)
    top = fig.axes[0]
    seed_points = [line for line in top.get_lines() if line.get_markersize() == SEED_MARKER_SIZE]
    pruned = cells[~cells["is_dense"]]
    assert len(seed_points) == len(pruned)  # one set of seed markers per pruned cell
    assert sum(len(line.get_ydata()) for line in seed_points) == 2 * len(pruned)


# ---------------------------------------------------------------------------------------------- at chance

def test_a_run_at_chance_is_flagged_and_kept_off_the_axis():
    runs = results_frame(grid(TWO_SEEDS))
    chance = at_chance(runs.assign(top1=[0.145, 0.146] + [0.9] * (len(runs) - 2)))
    assert chance.tolist()[:2] == [True, False]  # 10 classes: chance + 5% of the way = 14.5%
    board = leaderboard(runs)
    granet = board[(board["method"] == "granet") & (board["target_sparsity"] == 0.9)].iloc[0]
    assert granet["n_at_chance"] == 1 and "1/2 seeds at chance" in granet["flag"]
    _, cells, style, seeds, deltas = figure_inputs(grid(TWO_SEEDS))
    with rc_context():
        fig = fig_accuracy(cells, style, seeds, deltas)
    low, high = fig.axes[0].get_ylim()
    assert 12 < low < 84 and high < 95  # the collapsed 12% run does not stretch the axis
    floor = [t for t in fig.axes[0].texts if t.get_text().startswith("12.0")]
    assert floor, "the run at chance is written on the panel's floor"


# ---------------------------------------------------------------------------------------------- figures

def test_pareto_front_keeps_the_points_nothing_beats_on_both_axes():
    x = np.array([10.0, 10.0, 20.0, 20.0, 50.0, 100.0, 30.0])
    y = np.array([60.0, 65.0, 64.0, 70.0, 70.0, 80.0, 75.0])
    assert pareto_front(x, y).tolist() == [1, 3, 6, 5]


def test_every_figure_has_scaled_axes_and_no_overlapping_titles():
    _, cells, style, seeds, deltas = figure_inputs(grid(TWO_SEEDS))
    with rc_context():
        figures = {"accuracy": fig_accuracy(cells, style, seeds, deltas),
                   "forest": fig_delta_forest(cells, style, deltas),
                   "pareto": fig_pareto_macs(cells, style), "cost": fig_accuracy_vs_cost(cells, style),
                   "ap": fig_ap_effect(cells, style)}
        for name, fig in figures.items():
            assert fig is not None, name
            renderer = FigureCanvasAgg(fig).get_renderer()
            fig.draw(renderer)
            labels = [label for ax in fig.axes for label in (ax.get_xlabel(), ax.get_ylabel()) if label]
            numeric = [label for label in labels if "%" in label or "epoch" in label or "pp" in label]
            scaled = [any(s in label for s in ("linear", "log", "logit")) for label in numeric]
            assert numeric and all(scaled), (name, labels)
            axes_titles = [ax.title for ax in fig.axes]
            titles = [t for t in fig.findobj(Text)
                      if t.get_text() and (t in axes_titles or t.get_text() == fig.get_suptitle())]
            boxes = [t.get_window_extent(renderer) for t in titles]
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    assert not boxes[i].overlaps(boxes[j]), (name, titles[i].get_text(), titles[j].get_text())


def test_every_figure_is_written_as_png_and_pdf():
    results = grid(TWO_SEEDS)
    runs = results_frame(results)
    figures = render_figures(runs, results, leaderboard(runs))
    stems = {name.rsplit(".", 1)[0] for name in figures}
    assert {"sparsity_vs_accuracy", "delta_forest", "pareto_macs", "accuracy_vs_cost", "ap_effect"} <= stems
    assert stems <= set(FIGURE_CAPTIONS)
    for stem in stems:
        assert figures[f"{stem}.png"][:8] == b"\x89PNG\r\n\x1a\n"
        assert figures[f"{stem}.pdf"][:5] == b"%PDF-"
