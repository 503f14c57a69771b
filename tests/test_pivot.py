"""The terminal pivot (method × target sparsity of top-1): its numbers are the board's, it fits 100
columns however long the names and however many the sparsities, dense appears once, marks are right."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from benchmark.report.leaderboard import leaderboard
from benchmark.report.markdown import significance
from benchmark.report.pivot import BEST_MARK, MAX_FLAGS, WIDTH, pivot_panels, pivot_text, target_text
from benchmark.report.spread import format_top1
from benchmark.store.run_store import results_frame
from helpers import make_result

TARGETS = [0.5, 0.7, 0.8, 0.9, 0.95, 0.98]
LONG = "[end_frac=0.75,begin_frac=0.125,update_every=100]"


def wide_board(seeds: int = 3, suffix: str = LONG) -> pd.DataFrame:
    """dense plus four methods with long labels at six sparsities."""
    results = [make_result("dense", 0.0, s, top1=0.92 + 0.001 * s) for s in range(seeds)]
    for i, method in enumerate(["gmp", "magnitude", "granet", "random"]):
        for t in TARGETS:
            for s in range(seeds):
                boost = 0.15 if (method, t) == ("random", 0.98) else 0.0
                top1 = 0.9 - 0.2 * t - 0.03 * i + 0.002 * s * i + boost
                results.append(make_result(method, t, s, top1=top1, label=method + suffix,
                                           hparams={"end_frac": 0.75}))
    return leaderboard(results_frame(results), reference="gmp" + suffix)


def parse(text: str) -> dict[tuple[str, float], str]:
    """(row name, target) → cell text, read back from every block of the pivot (names as printed)."""
    cells: dict[tuple[str, float], str] = {}
    targets: list[float] = []
    for line in text.splitlines():
        if line.startswith("method "):
            targets = [float(t) / 100 for t in re.findall(r"(\d+(?:\.\d+)?)%", line)]
        elif not line:
            targets = []  # a block ends at a blank line
        elif targets and not line.startswith(("-", "!", " ")):  # not the rule, a flag or its continuation
            name, rest = re.split(r"\s{2,}", line, maxsplit=1)
            merged: list[str] = []
            for part in re.split(r"\s{2,}", rest.strip()):  # a best mark after a significance mark sits
                if part == BEST_MARK:                     # two spaces away
                    merged[-1] += f" {BEST_MARK}"
                else:
                    merged.append(part)
            assert len(merged) == len(targets), line
            cells.update({(name, t): c for t, c in zip(targets, merged)})
    return cells


def test_every_line_fits_100_columns_with_long_names_and_six_sparsities():
    board = wide_board()
    text = pivot_text(board)
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert text.count("method ") >= 2  # six wide columns do not fit one block: wrapped
    for target in TARGETS:
        assert sum(line.startswith("method") and f" {target_text(target)}" in line
                   for line in text.splitlines()) == 1


def test_the_cells_are_the_boards_numbers_with_marks_and_the_best_per_column():
    board = wide_board()
    cells = parse(pivot_text(board))
    pruned = board[board["method_base"] != "dense"]
    assert len(cells) == len(pruned) == 4 * len(TARGETS)
    for _, row in pruned.iterrows():
        best = row["top1"] == pruned.loc[pruned["target_sparsity"] == row["target_sparsity"], "top1"].max()
        expected = format_top1(row) + significance(row["p_holm"])
        got = cells[(row["method"], row["target_sparsity"])]
        assert got.removesuffix(f" {BEST_MARK}").rstrip() == expected
        assert got.endswith(BEST_MARK) == best
    assert any("*" in c for c in cells.values())  # the fixture has significant differences
    assert cells[("random" + LONG, 0.98)].endswith(BEST_MARK)


def test_dense_is_shown_once_with_its_top1():
    board = wide_board()
    text = pivot_text(board)
    dense = board[board["method"] == "dense"].iloc[0]
    lines = [line for line in text.splitlines() if line.startswith("dense")]
    assert lines == [f"dense (no pruning): {format_top1(dense)}"]


def test_a_name_longer_than_the_screen_is_shortened_and_nothing_exceeds_the_width():
    text = pivot_text(wide_board(seeds=2, suffix="[" + "x" * 120 + "]"))
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert "…" in text
    assert "(min–max)" in text  # two seeds: no t-interval


def test_header_names_panel_epochs_and_spread_and_legend_names_the_reference():
    results = [make_result(m, t, s, top1=0.8 + 0.01 * s) for m, t in [("dense", 0.0), ("gmp", 0.9)]
               for s in range(2)]
    results += [make_result("gmp", 0.9, s, top1=0.7, model="lenet5", epochs=5) for s in range(3)]
    board = leaderboard(results_frame(results))
    text = pivot_text(board)
    lines = text.splitlines()
    assert lines[0] == "synthetic / lenet5 / relu — 5 epochs, 3 seeds: mean ± 95% t-interval over seeds"
    assert any(line.startswith("synthetic / mlp / relu — 3 epochs, 2 seeds: mean (min–max) over seeds")
               for line in lines)
    assert "paired t-test against gmp" in text and "* / **" in text
    assert [p.title for p in pivot_panels(board)] == ["synthetic / lenet5 / relu", "synthetic / mlp / relu"]


def test_flags_are_listed_under_their_panel():
    results = [make_result("gmp", 0.9, s, top1=0.8) for s in range(2)]
    results.append(make_result("gmp", 0.9, 2, status="failed", reason="diverged"))
    text = pivot_text(leaderboard(results_frame(results)))
    assert "! gmp at 90%: 1/3 seeds failed (1 diverged)" in text.splitlines()


def test_many_flags_are_cut_short_with_a_count():
    results = [make_result("gmp", t, 0, top1=0.8, sparsity=t - 0.05) for t in TARGETS + [0.6, 0.85, 0.99]]
    text = pivot_text(leaderboard(results_frame(results)))
    flags = [line for line in text.splitlines() if line.startswith("! ")]
    assert len(flags) == MAX_FLAGS + 1 and flags[-1] == "! … and 1 more flagged cells (the flag column of " \
        "leaderboard.md)"


def test_methods_run_with_several_training_configs_are_told_apart():
    results = [make_result("gmp", 0.9, s, top1=0.8, epochs=e) for s in range(2) for e in (3, 5)]
    cells = parse(pivot_text(leaderboard(results_frame(results))))
    assert {name for name, _ in cells} == {"gmp [epochs=3]", "gmp [epochs=5]"}


@pytest.mark.parametrize("width", [60, 80])
def test_narrower_widths_are_respected(width):
    text = pivot_text(wide_board(), width=width)
    assert max(len(line) for line in text.splitlines()) <= width


def test_an_empty_board_says_so():
    assert pivot_text(leaderboard(results_frame([]))) == "no runs"
