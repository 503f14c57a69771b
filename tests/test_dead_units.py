"""The dead-unit family end to end: the per-epoch history entry, the plot, and the CLI on synthetic."""
import sys
from pathlib import Path

import pandas as pd

from benchmark.cli import main
from benchmark.report.leaderboard import leaderboard
from benchmark.report.plots.render import render_figures
from benchmark.store.run_store import results_frame

sys.path.insert(0, str(Path(__file__).parent))
from test_report import make_result  # noqa: E402  (the report tests' result fixture)

FAST = ["--dataset", "synthetic", "--epochs", "2", "--batch-size", "64", "--no-progress",
        "--executor", "inline"]


def with_dead_units(result: dict, rate: float) -> dict:
    for h in result["history"]:
        h["dead_units"] = {"count": round(rate * 100), "rate": rate + 0.01 * h["epoch"]}
    return result


def test_dead_unit_plot_is_drawn_only_from_runs_that_recorded_it():
    cells = [("dense", 0.0, 0.02), ("gmp", 0.5, 0.05), ("dnr", 0.5, 0.2), ("dnr", 0.9, 0.3)]
    results = [with_dead_units(make_result(m, t, seed), rate) for m, t, rate in cells for seed in (0, 1)]
    runs = results_frame(results)
    figures = render_figures(runs, results, leaderboard(runs))
    assert figures["dead_units.png"][:8] == b"\x89PNG\r\n\x1a\n"
    for r in results:
        for h in r["history"]:
            del h["dead_units"]
    assert "dead_units.png" not in render_figures(runs, results, leaderboard(runs))


def test_cli_runs_dnr_and_demp_on_synthetic(tmp_path, capsys):
    out = tmp_path / "res"
    assert main([*FAST, "--model", "lenet5", "--methods", "dnr", "demp", "gmp", "--sparsities", "0.8",
                 "--seeds", "0", "--hp", "demp.lambda_peak=0.01", "--out", str(out)]) == 0
    assert "4 runs: 4 ran" in capsys.readouterr().out
    board = pd.read_csv(out / "leaderboard.csv").set_index("method")
    assert board.loc["dnr", "sparsity"] == 0.8 and pd.isna(board.loc["dnr", "flag"])
    assert board.loc["dnr", "neuron_sparsity"] > board.loc["gmp", "neuron_sparsity"]
    assert board.loc["demp[lambda_peak=0.01]", "neuron_sparsity"] > 0
    assert (out / "plots" / "dead_units.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([*FAST, "--methods", "dnr", "--sparsities", "0.8", "--seeds", "0", "--out", str(out),
                 "--hp", "dnr.reactivation=revive"]) == 2
    assert "reactivation must be one of regrow, reinit" in capsys.readouterr().err
