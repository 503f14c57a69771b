"""Statistics against a reference method, checked against hand computations on hand-built results."""
from __future__ import annotations

import math

import pytest
from scipy.stats import t as student_t

from benchmark.cli import main
from benchmark.report.latex import escape, to_latex
from benchmark.report.leaderboard import leaderboard
from benchmark.report.markdown import to_markdown
from benchmark.report.reference import default_reference, holm
from benchmark.store.run_store import results_frame
from helpers import make_result

GMP = [0.80, 0.82, 0.81]
BETTER = [0.83, 0.84, 0.81]   # per-seed differences 0.03, 0.02, 0.00
WORSE = [0.70, 0.71, 0.73]    # per-seed differences -0.10, -0.11, -0.08: mean -0.0967, t = -10.96


def board(reference=None):
    results = [make_result("dense", 0.0, s, top1=0.9) for s in range(3)]
    results += [make_result("gmp", 0.9, s, top1=v) for s, v in enumerate(GMP)]
    results += [make_result("granet", 0.9, s, top1=v) for s, v in enumerate(BETTER)]
    results += [make_result("random", 0.9, s, top1=v) for s, v in enumerate(WORSE)]
    results += [make_result("gmp", 0.5, s, top1=0.85) for s in range(3)]
    results += [make_result("random", 0.5, s, top1=0.86) for s in range(2)]  # one seed missing
    return leaderboard(results_frame(results), reference=reference)


def paired_by_hand(diffs: list[float]) -> tuple[float, float, float]:
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = student_t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    p = 2 * student_t.sf(abs(mean / (sd / math.sqrt(n))), n - 1)
    return mean, half, p


def test_the_paired_delta_its_interval_and_p_value_match_a_hand_computation():
    rows = board().set_index(["method", "target_sparsity"])
    for method, values in [("granet", BETTER), ("random", WORSE)]:
        row = rows.loc[(method, 0.9)]
        mean, half, p = paired_by_hand([a - b for a, b in zip(values, GMP)])
        assert row["reference"] == "gmp"
        assert row["delta_vs_reference"] == pytest.approx(mean, abs=1e-12)
        assert row["delta_vs_reference_ci95"] == pytest.approx(half, rel=1e-9)
        assert row["p_value"] == pytest.approx(p, rel=1e-9)
    # random at 50%: two paired seeds, both +0.01 -> no spread, so no test
    row = rows.loc[("random", 0.5)]
    assert row["delta_vs_reference"] == pytest.approx(0.01) and math.isnan(row["p_value"])
    assert math.isnan(rows.loc[("gmp", 0.9), "delta_vs_reference"])  # the reference itself


def test_holm_adjusts_by_the_number_of_tests_step_down_and_keeps_order():
    assert holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan], nan_ok=True)
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    rows = board()
    p = rows["p_value"].dropna()
    assert rows["p_holm"].dropna().tolist() == pytest.approx(holm(p.tolist()))


def test_ranks_average_over_the_sparsities_of_a_panel():
    rows = board().set_index(["method", "target_sparsity"])
    # 90%: granet 1, gmp 2, random 3; 50%: random 1, gmp 2
    assert rows.loc[("granet", 0.9), "rank"] == 1.0
    assert rows.loc[("gmp", 0.9), "rank"] == rows.loc[("gmp", 0.5), "rank"] == 2.0
    assert rows.loc[("random", 0.9), "rank"] == rows.loc[("random", 0.5), "rank"] == 2.0
    assert math.isnan(rows.loc[("dense", 0.0), "rank"])


def test_a_dense_reference_pairs_every_sparsity_with_the_one_dense_cell():
    rows = board(reference="dense").set_index(["method", "target_sparsity"])
    assert rows.loc[("gmp", 0.5), "delta_vs_reference"] == pytest.approx(-0.05)
    assert rows.loc[("granet", 0.9), "delta_vs_reference"] == pytest.approx(sum(BETTER) / 3 - 0.9)


def test_the_default_reference_and_the_markdown_marks():
    assert default_reference(["dense", "granet", "magnitude", "gmp"]) == "gmp"
    assert default_reference(["dense", "magnitude"]) == "magnitude"
    assert default_reference(["granet"]) == "dense"
    table = to_markdown(board())
    random = next(line for line in table.splitlines() if "| random " in line and "90%" in line)
    # p = 0.0082, two tests (granet's p = 0.199): Holm gives 0.016 < 0.05 -> one star
    assert random.split("|")[8].strip() == "-9.67 ± 3.79*"
    assert "Holm" in table


def test_an_unknown_reference_is_refused_up_front(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["--dataset", "synthetic", "--epochs", "1", "--executor", "inline", "--methods", "gmp",
                 "--reference", "gnp", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown --reference method 'gnp' (did you mean 'gmp'?)" in err and not out.exists()


def test_the_latex_table_is_booktabs_with_the_best_in_bold_and_the_marks():
    text = to_latex(board())
    assert text.count(r"\begin{tabular}{lrr}") == 1 and r"\toprule" in text and r"\bottomrule" in text
    lines = text.splitlines()
    assert r"method & 50\% & 90\% \\" in lines
    assert r"dense & \multicolumn{2}{c}{90.00 $\pm$ 0.00} \\" in lines
    granet = next(line for line in lines if line.startswith("granet"))
    assert granet == r"granet & -- & \textbf{82.67} $\pm$ 3.79 \\"  # best at 90%, not significant
    random = next(line for line in lines if line.startswith("random"))
    # 50%: two seeds -> the range, not a t-interval; 90%: Holm p = 0.016 -> one star
    assert random == r"random & \textbf{86.00} (86.00--86.00) & 71.33 $\pm$ 3.79$^{*}$ \\"
    assert "paired t-test against gmp, Holm-corrected" in text and "3 seeds" in text


def test_latex_escapes_what_method_names_hold():
    assert escape("gmp+ap[ap_share=0.2] 90%") == r"gmp+ap[ap\_share=0.2] 90\%"
