"""Leaderboard, Markdown and report files, from hand-built results in a RunStore (no torch)."""
from __future__ import annotations

import math
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.report.leaderboard import BOARD_COLUMNS, leaderboard
from benchmark.report.markdown import HEADER_LINE, to_markdown
from benchmark.report.statistics import ci95_halfwidth
from benchmark.report.writer import write_reports
from benchmark.store.run_store import RunStore, results_frame
from helpers import MACS_DENSE, make_result

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Figures every grid with a reference, MACs and epochs draws (as PNG and PDF) ...
SUMMARY_FIGURES = {f"{stem}.{ext}" for ext in ("png", "pdf")
                   for stem in ("sparsity_vs_accuracy", "delta_forest", "pareto_macs", "accuracy_vs_cost")}
#: ... and those that need histories and layer sparsity too.
FIGURES = SUMMARY_FIGURES | {f"{stem}.{ext}" for stem in ("dead_rate_dynamic", "layer_sparsity")
                             for ext in ("png", "pdf")}

# top-1 per seed (0, 1, 2) of the main fixture: (method, target) -> values
TOP1 = {
    ("dense", 0.0): [0.90, 0.91, 0.92],
    ("gmp", 0.5): [0.89, 0.90, 0.88],
    ("gmp", 0.9): [0.85, 0.86, 0.84],
    ("magnitude", 0.5): [0.88, 0.88, 0.89],
    ("magnitude", 0.9): [0.80, 0.82, 0.81],
}


def macs_sparse(target: float, seed: int) -> int:
    return round(MACS_DENSE * (1 - target)) + 10 * seed


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch):
    """Durability is tested in test_store.py; skipping fsync here keeps these tests fast."""
    monkeypatch.setattr("os.fsync", lambda fd: None)


@pytest.fixture
def store(tmp_path) -> RunStore:
    """Three seeds of gmp and magnitude at 50% and 90%, plus dense."""
    store = RunStore(tmp_path / "results")
    for (method, target), values in TOP1.items():
        for seed, top1 in enumerate(values):
            store.save(make_result(method, target, seed, top1))
    return store


def row_of(board: pd.DataFrame, method: str, target: float) -> pd.Series:
    rows = board[(board["method"] == method) & (board["target_sparsity"] == target)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


# ---------------------------------------------------------------------------------------------- ci95

def test_ci95_matches_hand_computation():
    hand = 3.182446305284263 * 1.2909944487358056 / 2  # t_{0.975,3} * s / sqrt(4)
    assert ci95_halfwidth([1, 2, 3, 4]) == pytest.approx(hand, rel=1e-12)
    assert ci95_halfwidth([1, 2, 3, 4]) == pytest.approx(2.05426, abs=1e-5)


def test_ci95_degenerate_cases():
    assert math.isnan(ci95_halfwidth([0.9]))
    assert math.isnan(ci95_halfwidth([]))
    assert ci95_halfwidth([0.9, 0.9, 0.9]) == 0.0
    assert ci95_halfwidth([1, 2, 3, 4, float("nan")]) == ci95_halfwidth([1, 2, 3, 4])


# ---------------------------------------------------------------------------------------------- leaderboard

def test_leaderboard_means_ci_macs_and_order(store):
    board = leaderboard(store.frame())
    assert list(board.columns[:len(BOARD_COLUMNS)]) == BOARD_COLUMNS
    assert [(m, t) for m, t in zip(board["method"], board["target_sparsity"])] == [
        ("dense", 0.0), ("gmp", 0.5), ("magnitude", 0.5), ("gmp", 0.9), ("magnitude", 0.9)]
    for (method, target), values in TOP1.items():
        row = row_of(board, method, target)
        assert row["top1"] == pytest.approx(statistics.mean(values), abs=1e-12)
        assert row["top1_ci95"] == pytest.approx(ci95_halfwidth(values), rel=1e-12)
        assert row["top1_std"] == pytest.approx(statistics.stdev(values), rel=1e-12)
        assert row["n_seeds"] == 3 and row["n_runs"] == 3
        ratio = statistics.mean(macs_sparse(target, s) / MACS_DENSE for s in range(3))
        assert row["macs_sparse_ratio"] == pytest.approx(ratio, abs=1e-12)
        assert row["sparsity"] == pytest.approx(target)
        assert row["train_time_s"] == pytest.approx(2.0)
        assert row["params_nonzero"] == pytest.approx(round(5000 * (1 - target)) + 1)
        assert row["epochs"] == 3
        assert row["flag"] == ""


def test_delta_vs_dense_is_exact(store):
    board = leaderboard(store.frame())
    dense = statistics.mean(TOP1[("dense", 0.0)])
    for (method, target), values in TOP1.items():
        delta = row_of(board, method, target)["delta_vs_dense"]
        assert delta == pytest.approx(statistics.mean(values) - dense, abs=1e-12)
    assert row_of(board, "dense", 0.0)["delta_vs_dense"] == 0.0


def test_delta_vs_dense_needs_the_same_training_config(store):
    store.save(make_result("gmp", 0.9, 0, 0.7, epochs=5))  # another budget: no dense reference
    board = leaderboard(store.frame())
    other = board[(board["method"] == "gmp") & (board["epochs"] == 5)]
    assert len(other) == 1 and math.isnan(other.iloc[0]["delta_vs_dense"])


def test_failed_seed_is_flagged_and_left_out_of_the_means(tmp_path):
    store = RunStore(tmp_path)
    store.save(make_result("gmp", 0.9, 0, 0.80))
    store.save(make_result("gmp", 0.9, 1, 0.84))
    store.save(make_result("gmp", 0.9, 2, status="failed"))
    row = leaderboard(store.frame()).iloc[0]
    assert row["flag"] == "1/3 seeds failed (1 error)"
    assert row["n_seeds"] == 2 and row["n_runs"] == 3
    assert row["top1"] == pytest.approx(0.82, abs=1e-12)
    assert row["top1_ci95"] == pytest.approx(ci95_halfwidth([0.80, 0.84]), rel=1e-12)


def test_sparsity_off_target_is_flagged_with_both_numbers(tmp_path):
    store = RunStore(tmp_path)
    store.save(make_result("grda", 0.9, 0, 0.8, sparsity=0.870))
    store.save(make_result("grda", 0.9, 1, 0.8, sparsity=0.878))
    store.save(make_result("grda", 0.9, 2, status="failed"))
    row = leaderboard(store.frame(), sparsity_tolerance=0.01).iloc[0]
    assert row["flag"] == "sparsity off target (0.874 vs 0.900); 1/3 seeds failed (1 error)"
    assert row["sparsity"] == pytest.approx(0.874)


def test_one_seed_off_target_is_enough_and_tolerance_is_respected(tmp_path):
    store = RunStore(tmp_path)
    store.save(make_result("gmp", 0.9, 0, 0.8, sparsity=0.900))
    store.save(make_result("gmp", 0.9, 1, 0.8, sparsity=0.916))
    assert leaderboard(store.frame(), 0.01).iloc[0]["flag"] == "sparsity off target (0.908 vs 0.900)"
    assert leaderboard(store.frame(), 0.02).iloc[0]["flag"] == ""


def test_within_tolerance_is_not_flagged(tmp_path):
    store = RunStore(tmp_path)
    store.save(make_result("gmp", 0.9, 0, 0.8, sparsity=0.905))
    store.save(make_result("gmp", 0.9, 1, 0.8, sparsity=0.91))  # exactly at the tolerance
    row = leaderboard(store.frame(), sparsity_tolerance=0.01).iloc[0]
    assert row["flag"] == ""


def test_single_seed_is_not_a_flag(tmp_path):
    store = RunStore(tmp_path)
    store.save(make_result("gmp", 0.9, 0, 0.8))
    row = leaderboard(store.frame()).iloc[0]
    assert row["flag"] == "" and row["n_seeds"] == 1 and math.isnan(row["top1_ci95"])


def test_all_seeds_failed(tmp_path):
    store = RunStore(tmp_path)
    for seed in range(2):
        store.save(make_result("gmp", 0.9, seed, status="failed"))
    board = leaderboard(store.frame())
    row = board.iloc[0]
    assert len(board) == 1
    assert row["flag"] == "all seeds failed (2 errors)" and row["n_seeds"] == 0 and row["n_runs"] == 2
    for column in ["top1", "top1_ci95", "sparsity", "macs_sparse_ratio", "dead_rate_dynamic", "epochs"]:
        assert math.isnan(row[column]), column
    assert row["method"] == "gmp" and row["target_sparsity"] == 0.9


def test_labels_with_different_hparams_are_separate_rows(tmp_path):
    store = RunStore(tmp_path)
    for seed in range(2):
        store.save(make_result("gmp", 0.9, seed, 0.80, hparams={"end_frac": 0.5}))
        store.save(make_result("gmp", 0.9, seed, 0.85, label="gmp[end_frac=0.8]", hparams={"end_frac": 0.8}))
    board = leaderboard(store.frame())
    assert list(board["method"]) == ["gmp[end_frac=0.8]", "gmp"]  # top-1 descending
    assert list(board["top1"]) == pytest.approx([0.85, 0.80])
    assert set(board["method_base"]) == {"gmp"}


def test_empty_frame_gives_empty_board(tmp_path):
    board = leaderboard(RunStore(tmp_path).frame())
    assert board.empty and list(board.columns[:len(BOARD_COLUMNS)]) == BOARD_COLUMNS


# ---------------------------------------------------------------------------------------------- markdown

def test_markdown_table(store):
    board = leaderboard(store.frame())
    text = to_markdown(board, sparsity_tolerance=0.01)
    lines = text.splitlines()
    assert HEADER_LINE.format(spread="mean ± 95% t-interval over seeds") + "." in lines
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 2 + len(board)  # header, separator, one line per row
    assert "top-1 (%)" in table[0] and "method" in table[0]
    gmp90 = next(line for line in table if "| gmp " in line and "90%" in line)
    mean, ci = 100 * statistics.mean(TOP1[("gmp", 0.9)]), 100 * ci95_halfwidth(TOP1[("gmp", 0.9)])
    assert f"{mean:.2f} ± {ci:.2f}" in gmp90
    assert "85.00 ± 2.48" in gmp90
    assert "-6.00" in gmp90  # delta vs dense, percentage points
    assert "Flags:" in text and "0.01" in text


def test_markdown_single_seed_and_failed_cells(tmp_path):
    store = RunStore(tmp_path)
    store.save(make_result("gmp", 0.9, 0, 0.8123))
    store.save(make_result("magnitude", 0.9, 0, status="failed"))
    text = to_markdown(leaderboard(store.frame()))
    gmp = next(line for line in text.splitlines() if "| gmp " in line)
    failed = next(line for line in text.splitlines() if "| magnitude " in line)
    assert "81.23" in gmp and "±" not in gmp
    assert "all seeds failed" in failed and "—" in failed


# ---------------------------------------------------------------------------------------------- files

def _assert_png(path: Path) -> None:
    """A real figure: PNG or PDF by its suffix."""
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8 if path.suffix == ".png" else 5] == (
        PNG_MAGIC if path.suffix == ".png" else b"%PDF-"), path


def test_write_reports_creates_csv_markdown_and_plots(store, tmp_path):
    out = tmp_path / "report"
    paths = write_reports(store, out)
    assert paths.csv == out / "leaderboard.csv" and paths.markdown == out / "leaderboard.md"
    csv = pd.read_csv(paths.csv)
    assert len(csv) == 5 and list(csv.columns[:len(BOARD_COLUMNS)]) == BOARD_COLUMNS
    assert csv.loc[csv["method"] == "gmp", "top1"].tolist() == pytest.approx([0.89, 0.85], abs=1e-12)
    assert paths.markdown.read_text(encoding="utf-8") == paths.table
    assert {p.name for p in paths.plots} == FIGURES
    for path in paths.plots:
        assert path.parent == out / "plots"
        _assert_png(path)
    assert [p.name for p in out.rglob("*") if ".tmp." in p.name] == []


def test_write_reports_without_plots(store, tmp_path):
    paths = write_reports(store, tmp_path / "report", plots=False)
    assert paths.plots == [] and not (tmp_path / "report" / "plots").exists()
    assert paths.csv.exists() and paths.markdown.exists()


def test_write_reports_restricted_to_run_ids(store, tmp_path):
    dense_ids = [r["run_id"] for r in store.iter_results() if r["spec"]["method"] == "dense"]
    paths = write_reports(store, tmp_path / "report", run_ids=dense_ids, plots=False)
    assert pd.read_csv(paths.csv)["method"].tolist() == ["dense"]


def test_write_reports_with_only_failed_runs(tmp_path):
    store = RunStore(tmp_path)
    for seed in range(2):
        store.save(make_result("gmp", 0.9, seed, status="failed"))
    paths = write_reports(store, tmp_path)
    assert paths.plots == [] and not list((tmp_path / "plots").glob("*.png"))
    assert "all seeds failed" in paths.table
    assert pd.read_csv(paths.csv)["flag"].tolist() == ["all seeds failed (2 errors)"]


def test_stale_figures_are_removed(store, tmp_path):
    out = tmp_path / "report"
    write_reports(store, out)
    for result in store.iter_results():  # now: no dead-rate history, no layer sparsity anywhere
        store.save({**result, "history": [{"epoch": 1, "top1": 0.5}], "layer_sparsity": {}})
    paths = write_reports(store, out)
    assert {p.name for p in paths.plots} == SUMMARY_FIGURES
    assert {p.name for p in (out / "plots").iterdir()} == SUMMARY_FIGURES


def test_plots_with_mixed_configs_activations_and_many_layers(tmp_path):
    """Several training configs, activations and a deep model in one store still give every figure."""
    from benchmark.report.plots.render import plot_all

    layers = tuple(f"layer{b}.{i}.conv{c}.weight" for b in (1, 2, 3) for i in range(2) for c in (1, 2))
    results = []
    for seed in range(2):
        for act in ("relu", "gelu"):
            results.append(make_result("dense", 0.0, seed, 0.9, activation=act))
            results.append(make_result("gmp", 0.95, seed, 0.85, activation=act))
        results.append(make_result("gmp", 0.95, seed, 0.86, epochs=5))
        results.append(make_result("gmp", 0.99, seed, 0.6, model="resnet20", layers=layers))
        results.append(make_result("dense", 0.0, seed, 0.92, model="resnet20", layers=layers))
    runs = results_frame(results)
    paths = plot_all(runs, results, leaderboard(runs), tmp_path / "plots")
    # gmp is the reference and the only pruned method: nothing to draw a Δ forest of
    assert {p.name for p in paths} == FIGURES - {"delta_forest.png", "delta_forest.pdf"}
    for path in paths:
        _assert_png(path)


# ---------------------------------------------------------------------------------------------- CLI

def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmark.report", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_on_empty_folder_exits_2_with_one_line(tmp_path):
    proc = _cli(str(tmp_path))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "no runs" in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "leaderboard.csv").exists()


def test_cli_main_rebuilds_reports_without_importing_torch(store):
    """The store, report and plot modules never import torch (and main() prints the table)."""
    code = ("import sys, benchmark.report.plots.render; from benchmark.report.__main__ import main; "
            f"rc = main([{str(store.root)!r}, '--no-plots']); "
            "sys.exit(rc or (3 if 'torch' in sys.modules else 0))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "dense (no pruning)" in proc.stdout and "| synthetic |" not in proc.stdout  # the pivot, no table
    assert (store.root / "leaderboard.csv").exists() and (store.root / "leaderboard.md").exists()


def test_numbers_survive_numpy_inputs():
    assert ci95_halfwidth(np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(2.05426, abs=1e-5)


def test_the_headline_is_the_final_epoch_never_the_best_or_an_average(tmp_path):
    store = RunStore(tmp_path)
    for seed, final in enumerate([0.70, 0.72]):
        result = make_result("gmp", 0.9, seed, final)
        result["history"] = [{"epoch": 1, "top1": 0.95, "dead_rate_dynamic": 0.9},
                             {"epoch": 2, "top1": 0.99, "dead_rate_dynamic": 0.8},
                             {"epoch": 3, "top1": final, "dead_rate_dynamic": 0.3}]
        result["metrics"]["dead_rate_dynamic"] = 0.3
        store.save(result)
    row = leaderboard(store.frame()).iloc[0]
    assert row["top1"] == pytest.approx(0.71, abs=1e-12)
    assert row["dead_rate_dynamic"] == pytest.approx(0.3, abs=1e-12)


def test_missing_seeds_are_flagged(tmp_path):
    store = RunStore(tmp_path)
    for seed in (0, 1, 2):
        store.save(make_result("dense", 0.0, seed, 0.9))
    for seed in (0, 2):
        store.save(make_result("gmp", 0.9, seed, 0.8))
    board = leaderboard(store.frame())  # expected: every seed seen in the table
    gmp = row_of(board, "gmp", 0.9)
    assert gmp["flag"] == "1/3 seeds missing" and gmp["n_missing"] == 1
    assert row_of(board, "dense", 0.0)["flag"] == ""
    board = leaderboard(store.frame(), expected_seeds=[0, 1, 2, 3])  # the grid's seeds
    assert row_of(board, "dense", 0.0)["flag"] == "1/4 seeds missing"
    assert row_of(board, "gmp", 0.9)["flag"] == "2/4 seeds missing"


def test_cli_skips_untrusted_files_with_one_warning_each(store):
    (store.runs_dir / "aaaaaaaaaaaa").mkdir()
    (store.runs_dir / "aaaaaaaaaaaa" / "result.json").write_text('{"hello": "world"}')
    (store.runs_dir / "bbbbbbbbbbbb").mkdir()
    (store.runs_dir / "bbbbbbbbbbbb" / "result.json").write_text('{"run_id": "bbbb')
    proc = _cli(str(store.root), "--no-plots")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert "aaaaaaaaaaaa/result.json: schema_version None" in warnings[0]
    assert "bbbbbbbbbbbb/result.json: not valid JSON" in warnings[1]
    assert "skipped 2 result file(s)" in proc.stderr
    assert len(pd.read_csv(store.root / "leaderboard.csv")) == 5


def test_rows_that_differ_only_in_training_settings_are_named_by_the_difference():
    results = [make_result("dense", 0.0, s, epochs=e, top1=0.9) for s in (0, 1) for e in (3, 5)]
    results += [make_result("gmp", 0.9, s, epochs=3) for s in (0, 1)]
    table = to_markdown(leaderboard(results_frame(results)))
    rows = [line.split("|")[3].strip() for line in table.splitlines() if line.startswith("| synthetic")]
    assert sorted(rows) == ["dense [epochs=3]", "dense [epochs=5]", "gmp"]
