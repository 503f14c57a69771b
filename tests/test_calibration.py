"""The calibration search (exact rules on made-up sparsity curves), its cache and cost, and its reports."""
import json
import math

import pandas as pd
import pytest
from test_report import make_result

from benchmark.execution import backends

from benchmark.engine import calibration

from benchmark.execution import executors

from benchmark.engine import train
from benchmark.engine.calibration import Probe, next_probe, search, stop_reason
from benchmark.cli import main
from benchmark.report.leaderboard import leaderboard
from benchmark.report.markdown import to_markdown
from benchmark.execution.runs import failed_result
from benchmark.spec import RunSpec, plan_grid
from benchmark.store.run_store import RunStore, results_frame
from methods.base import Calibration


def logistic(a: float, b: float, c0: float = 0.01):
    """A sparsity curve exactly logistic in log(value), saturated to 0/1 beyond 0.1%/99.9%."""
    def measure(probe: Probe) -> float:
        s = 1 / (1 + math.exp(-(a + b * math.log(probe.value / c0))))
        return 1.0 if s > 0.999 else 0.0 if s < 0.001 else s
    return measure


def logit(s: float) -> float:
    return math.log(s / (1 - s))


CAL = Calibration("c", low=1e-6, high=10.0, start=0.01)


# ----------------------------------------------------------------------------------------------
# the search rule

def test_from_an_unsaturated_start_half_a_decade_then_the_secant_lands_on_the_target():
    best, probes, reason = search(logistic(1.47, 2.11), 0.9, CAL)
    assert [p.rule for p in probes] == ["start", "bracket", "secant"]
    assert probes[0].value == 0.01 and probes[1].value == pytest.approx(0.01 * 10 ** 0.5, rel=1e-12)
    # a secant in (log value, logit sparsity) is exact on a logistic curve
    assert best.value == pytest.approx(0.01 * math.exp((logit(0.9) - 1.47) / 2.11), rel=1e-9)
    assert best.sparsity == pytest.approx(0.9, abs=1e-9) and reason == "within tolerance"


def test_saturated_probes_step_a_decade_and_a_bracket_without_a_secant_is_bisected():
    best, probes, reason = search(logistic(1.47, 6.0), 0.5, Calibration("c", 1e-6, 10.0, start=1e-5))
    assert [p.rule for p in probes] == ["start", "bracket", "bracket", "bracket", "bisect", "secant"]
    assert [p.value for p in probes[:4]] == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2], rel=1e-12)
    assert probes[4].value == pytest.approx(10 ** -2.5, rel=1e-12)  # 0.01 is the only unsaturated probe
    assert abs(best.sparsity - 0.5) <= CAL.tolerance and reason == "within tolerance"


def test_two_secant_probes_on_one_side_fall_back_to_bisection():
    probes = [Probe(0.01, 0.2, "start"), Probe(0.1, 0.99, "bracket"), Probe(0.02, 0.4, "secant"),
              Probe(0.03, 0.45, "secant")]
    planned = next_probe(probes, 0.5, CAL)
    assert planned.rule == "bisect" and planned.value == pytest.approx(math.sqrt(0.03 * 0.1), rel=1e-12)
    planned = next_probe(probes[:3], 0.5, CAL)  # one secant on that side: still a secant, kept in the bracket
    ratio = (0.1 / 0.02) ** 0.1  # the middle 80% of the bracket [0.02, 0.1] in log space
    assert planned.rule == "secant" and 0.02 * ratio <= planned.value <= 0.1 / ratio


def test_a_secant_step_toward_an_unbracketed_target_is_clamped_to_x100():
    probes = [Probe(1e-4, 0.01, "start"), Probe(2e-4, 0.011, "bracket")]  # a nearly flat secant
    planned = next_probe(probes, 0.9, CAL)
    assert planned.rule == "bracket" and planned.value == pytest.approx(2e-4 * 100, rel=1e-12)


@pytest.mark.parametrize("measure, target, cal, reason, n", [
    (lambda p: 0.5 * min(1.0, p.value), 0.9, Calibration("c", 1e-3, 1.0, start=0.1),
     "out of reach: sparsity at the upper bound is below the target", 3),
    (lambda p: 0.95, 0.5, Calibration("c", 1e-3, 1.0, start=0.01),
     "out of reach: sparsity at the lower bound is above the target", 4),
    (lambda p: 0.2 if p.value < 0.0123 else 0.95, 0.5,
     Calibration("c", 1e-6, 10.0, start=0.01, max_probes=40), "bracket collapsed", None),
    (logistic(1.47, 2.11), 0.9, Calibration("c", 1e-6, 10.0, start=1e-6, max_probes=3), "probe cap", 3),
])
def test_every_stopping_rule(measure, target, cal, reason, n):
    best, probes, why = search(measure, target, cal)
    assert why == reason and stop_reason(probes, target, cal) == reason
    assert n is None or len(probes) == n
    assert best == min(probes, key=lambda p: (abs(p.sparsity - target), p.value))
    if reason == "bracket collapsed":
        below = max(p.value for p in probes if p.sparsity < target)
        above = min(p.value for p in probes if p.sparsity > target)
        assert below < 0.0123 <= above < below * 1.001 and best.sparsity == 0.2


def test_a_bad_calibration_declaration_is_a_value_error():
    with pytest.raises(ValueError, match="bad calibration"):
        Calibration("c", low=1.0, high=0.1)


# ----------------------------------------------------------------------------------------------
# the harness side

FAST = dict(dataset="synthetic", model="mlp", epochs=2, batch_size=64, lr=0.1)


def test_which_specs_are_calibrated_and_what_keys_their_cache():
    spec = RunSpec(method="grda", target_sparsity=0.7, seed=1, **FAST)
    assert calibration.calibration_of(spec).hparam == "c"
    assert calibration.calibration_of(RunSpec(method="grda", target_sparsity=0.0, **FAST)) is None
    given = RunSpec(method="grda", target_sparsity=0.7, method_hparams={"c": 0.01}, **FAST)
    assert calibration.calibration_of(given) is None
    assert calibration.calibration_of(RunSpec(method="gmp", target_sparsity=0.7, **FAST)) is None
    cal = calibration.calibration_of(spec)
    key = calibration.cache_key(spec, cal)
    assert key == calibration.cache_key(RunSpec(method="grda", target_sparsity=0.7, seed=5, **FAST), cal)
    assert key != calibration.cache_key(RunSpec(method="grda", target_sparsity=0.8, seed=1, **FAST), cal)
    assert key != calibration.cache_key(RunSpec(method="grda", target_sparsity=0.7, seed=1,
                                                **{**FAST, "epochs": 3}), cal)
    assert key != calibration.cache_key(spec, Calibration("c", 1e-6, 10.0, start=0.01, tolerance=0.01))
    resolved = RunSpec(method="grda", target_sparsity=0.7, method_hparams={"c": 0.0, "mu": 0.51}, **FAST)
    assert calibration.cache_key(resolved, cal) == key


class CountingTrain:
    """``train.run`` that counts its calls (and can fail after some)."""

    def __init__(self, fail_after: int | None = None):
        self.calls: list[RunSpec] = []
        self.fail_after = fail_after

    def __call__(self, spec, progress=None, workdir=None):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("interrupted")
        self.calls.append(spec)
        return train.run(spec, progress=progress, workdir=workdir)


def test_calibration_hits_the_target_and_a_second_seed_hits_the_cache(tmp_path):
    target = 0.7
    spec = RunSpec(method="grda", target_sparsity=target, seed=1, **FAST)
    workdir = tmp_path / "runs" / spec.run_id
    counting = CountingTrain()
    result = calibration.run(spec, workdir=workdir, train_fn=counting)
    block = result["calibration"]
    n = len(block["probes"])
    assert block["cache"] == "miss" and block["within_tolerance"] and block["stop"] == "within tolerance"
    assert len(counting.calls) == n + 1  # n probes at the calibration seed, then the run itself
    assert all(s.seed == calibration.CALIBRATION_SEED for s in counting.calls[:-1])
    assert counting.calls[-1].method_hparams["c"] == block["value"] and counting.calls[-1].seed == 1
    assert abs(block["sparsity"] - target) <= 0.005
    assert abs(result["metrics"]["sparsity"] - target) <= 0.02  # another seed, the same c
    # the run keeps its planned identity; the value used and the search's cost are in the result
    assert result["run_id"] == spec.run_id and result["spec"]["method_hparams"] == {}
    assert result["label"] == "grda" and result["metrics"]["calibration_value"] == block["value"]
    assert result["metrics"]["calibration_probes"] == n
    assert result["metrics"]["calibration_epochs"] == 2 * n
    assert result["metrics"]["calibration_time_s"] == pytest.approx(sum(p["time_s"] for p in block["probes"]))
    assert (tmp_path / "calibration" / f"{block['key']}.json").exists()

    again = CountingTrain()
    second = calibration.run(RunSpec(method="grda", target_sparsity=target, seed=2, **FAST),
                             workdir=tmp_path / "runs" / "other", train_fn=again)
    assert second["calibration"]["cache"] == "hit" and second["calibration"]["value"] == block["value"]
    assert len(again.calls) == 1  # only the run: no probe
    assert second["metrics"]["calibration_epochs"] == 2 * n  # the cell's search cost, on every seed

    seed0 = CountingTrain()
    third = calibration.run(RunSpec(method="grda", target_sparsity=target, seed=0, **FAST),
                            workdir=tmp_path / "runs" / "zero", train_fn=seed0)
    assert seed0.calls == [] and third["calibration"]["reused_probe"]  # the chosen probe is that run
    assert third["metrics"]["sparsity"] == block["sparsity"]
    assert third["run_id"] == RunSpec(method="grda", target_sparsity=target, seed=0, **FAST).run_id


def test_an_interrupted_search_resumes_without_rerunning_its_probes(tmp_path):
    spec = RunSpec(method="grda", target_sparsity=0.6, seed=1, **FAST)
    workdir = tmp_path / "runs" / spec.run_id
    with pytest.raises(RuntimeError, match="interrupted"):
        calibration.run(spec, workdir=workdir, train_fn=CountingTrain(fail_after=2))
    (cached,) = (tmp_path / "calibration").glob("*.json")
    record = json.loads(cached.read_text())
    assert record["value"] is None and len(record["probes"]) == 2
    resumed = CountingTrain()
    result = calibration.run(spec, workdir=workdir, train_fn=resumed)
    assert result["calibration"]["cache"] == "resumed"
    assert [p["value"] for p in result["calibration"]["probes"][:2]] == [p["value"] for p in record["probes"]]
    assert len(resumed.calls) == len(result["calibration"]["probes"]) - 2 + 1


@pytest.mark.parametrize("method, hparams", [("grda", {"c": 0.02}), ("demp", {"lambda_peak": 0.05})])
def test_a_calibrated_method_trains_the_same_whatever_the_target(method, hparams):
    """The premise of sharing probes between targets: the hparam alone sets the sparsity."""
    a, b = (train.run(RunSpec(method=method, target_sparsity=t, method_hparams=hparams, **FAST))
            for t in (0.5, 0.8))
    assert a["metrics"]["sparsity"] == b["metrics"]["sparsity"] > 0
    assert a["metrics"]["top1"] == b["metrics"]["top1"]
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]


def test_a_search_takes_another_targets_probe_at_the_same_value_instead_of_training_it(tmp_path):
    first = calibration.run(RunSpec(method="grda", target_sparsity=0.7, seed=1, **FAST),
                            workdir=tmp_path / "runs" / "a", train_fn=CountingTrain())
    counting = CountingTrain()
    spec = RunSpec(method="grda", target_sparsity=0.6, seed=1, **FAST)
    second = calibration.run(spec, workdir=tmp_path / "runs" / "b", train_fn=counting)
    probes = second["calibration"]["probes"]
    shared = [p for p in probes if "shared_from" in p]
    first_values = {p["value"] for p in first["calibration"]["probes"]}
    assert "shared_from" in probes[0] and probes[0]["value"] in first_values  # the start is common
    assert all(p["shared_from"] == first["calibration"]["key"] for p in shared)
    assert all(p["value"] not in first_values for p in probes if "shared_from" not in p)
    assert len(counting.calls) == len(probes) - len(shared) + 1  # only the new probes and the run trained
    trained = [p for p in probes if "shared_from" not in p]
    assert second["metrics"]["calibration_epochs"] == 2 * len(trained)
    assert second["metrics"]["calibration_probes"] == len(probes)
    alone = calibration.run(spec, workdir=tmp_path / "alone" / "runs" / "b", train_fn=CountingTrain())
    assert [(p["value"], p["sparsity"]) for p in alone["calibration"]["probes"]] == \
        [(p["value"], p["sparsity"]) for p in probes]  # the same search as without sharing
    assert alone["metrics"]["top1"] == second["metrics"]["top1"]


def test_a_spec_without_calibration_is_a_plain_run():
    counting = CountingTrain()
    result = calibration.run(RunSpec(method="grda", method_hparams={"c": 0.05}, target_sparsity=0.5, **FAST),
                             train_fn=counting)
    assert len(counting.calls) == 1 and "calibration" not in result
    assert "calibration_epochs" not in result["metrics"]


# ----------------------------------------------------------------------------------------------
# reports

def test_the_leaderboard_shows_the_search_cost_in_its_budget_columns():
    results = [make_result("dense", 0.0, s) for s in (0, 1)]
    for seed, sparsity in [(0, 0.905), (1, 0.893)]:
        r = make_result("grda", 0.9, seed, sparsity=sparsity)
        r["metrics"].update(calibration_value=0.0123, calibration_probes=4, calibration_epochs=12,
                            calibration_time_s=40.0)
        results.append(r)
    board = leaderboard(results_frame(results), sparsity_tolerance=0.01).set_index("method")
    assert board.loc["grda", "calibration_epochs"] == 12 and board.loc["grda", "calibration_time_s"] == 40
    assert board.loc["grda", "calibration_value"] == 0.0123 and board.loc["grda", "flag"] == ""
    assert math.isnan(board.loc["dense", "calibration_epochs"])
    text = to_markdown(board.reset_index())
    row = next(line for line in text.splitlines() if line.startswith("| synthetic | mlp     | grda"))
    assert "3 + 12" in row and "+ 40.0" in row and "run + search" in text
    strict = leaderboard(results_frame(results), sparsity_tolerance=0.005).set_index("method")
    assert strict.loc["grda", "flag"] == "sparsity off target (0.899 vs 0.900)"


def accuracy_figure(results: list[dict]):
    """``sparsity_vs_accuracy`` of hand-made results, drawn as the report draws it."""
    from benchmark.report.cells import cell_keys
    from benchmark.report.leaderboard import with_train_config
    from benchmark.report.plots.accuracy import fig_accuracy
    from benchmark.report.plots.seeds import seed_frame
    from benchmark.report.plots.style import Style, figure_cells
    from benchmark.report.reference import paired_deltas
    runs = results_frame(results)
    board = leaderboard(runs)
    cells = figure_cells(board)
    deltas = paired_deltas(with_train_config(runs), cell_keys(runs), board["reference"].iloc[0])
    return fig_accuracy(cells, Style(cells), seed_frame(runs), deltas)


def test_the_accuracy_plot_puts_points_at_their_measured_sparsity():
    results = [make_result("dense", 0.0, 0)]
    results += [make_result("grda", t, 0, top1=0.85, sparsity=s) for t, s in [(0.8, 0.83), (0.9, 0.88)]]
    fig = accuracy_figure(results)
    (line,) = [ln for ln in fig.axes[0].lines if ln.get_label() == "grda"]
    assert list(line.get_xdata()) == [0.83, 0.88]
    assert "measured sparsity" in fig.axes[1].get_xlabel()  # on the Δ panel below, which shares the x axis


def test_a_single_sparsity_grid_draws_its_spread_as_error_bars():
    results = [make_result("dense", 0.0, s, top1=0.9) for s in (0, 1)]
    results += [make_result("gmp", 0.9, s, top1=t) for s, t in [(0, 0.80), (1, 0.82)]]
    ax = accuracy_figure(results).axes[0]
    (bar,) = ax.containers                                        # gmp's error bar, no band
    (segment,) = bar.lines[2][0].get_segments()
    # two seeds: the bar is their min–max, not the t-interval (t(0.975, 1) = 12.7 would span ±12.7 points)
    assert segment[:, 1] == pytest.approx([80, 82], abs=1e-9)
    results += [make_result("gmp", 0.9, 2, top1=0.84)]
    (bar,) = accuracy_figure(results).axes[0].containers
    (segment,) = bar.lines[2][0].get_segments()
    half = 100 * 4.302653 * 0.02 / 3 ** 0.5                       # t(0.975, 2) · s / √n, s = 0.02
    assert segment[:, 1] == pytest.approx([82 - half, 82 + half], abs=1e-4)


def test_a_cli_grid_with_grda_calibrates_and_reports(tmp_path, capsys):
    out = tmp_path / "res"
    argv = ["--dataset", "synthetic", "--epochs", "2", "--batch-size", "64", "--no-progress",
            "--methods", "grda", "--sparsities", "0.6", "--seeds", "0", "1", "--sparsity-tolerance", "0.02",
            "--out", str(out)]
    assert main(argv) == 0
    board = pd.read_csv(out / "leaderboard.csv").set_index("method")
    assert board.loc["grda", "n_seeds"] == 2 and pd.isna(board.loc["grda", "flag"])
    assert abs(board.loc["grda", "sparsity"] - 0.6) <= 0.02
    assert board.loc["grda", "calibration_epochs"] >= 4 and board.loc["grda", "calibration_value"] > 0
    assert len(list((out / "calibration").glob("*.json"))) == 1
    assert " + " in (out / "leaderboard.md").read_text()
    capsys.readouterr()
    assert main(argv) == 0  # a rerun: nothing runs, nothing searches
    assert "4 runs: 0 ran, 4 already complete, 0 failed" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# grid order: searches of different cells can run at once

def test_one_run_per_search_leads_the_grid_the_calibration_seeds_where_the_grid_has_it():
    specs = plan_grid(["gmp", "demp", "grda"], [0.9, 0.95], [1, 0], {}, dataset="synthetic", model="mlp",
                      epochs=1, batch_size=64, lr=0.1, threads=1)
    ordered = calibration.searches_first(specs)
    describe = [(s.method, s.target_sparsity, s.seed) for s in ordered]
    leaders = [("demp", 0.9, 0), ("demp", 0.95, 0), ("grda", 0.9, 0), ("grda", 0.95, 0)]
    assert describe[:4] == leaders
    assert describe[4:] == [(s.method, s.target_sparsity, s.seed) for s in specs
                            if (s.method, s.target_sparsity, s.seed) not in leaders]
    searched = plan_grid(["demp"], [0.9], [1, 2], {"demp": {"lambda_peak": 0.05}}, dataset="synthetic",
                         model="mlp", epochs=1, batch_size=64, lr=0.1, threads=1)
    assert calibration.searches_first(searched) == searched  # λ given: nothing to search, order kept
    no_seed_0 = plan_grid(["demp"], [0.9], [2, 1], {}, dataset="synthetic", model="mlp", epochs=1,
                          batch_size=64, lr=0.1, threads=1)
    assert calibration.searches_first(no_seed_0) == no_seed_0  # the cell's first run leads


def test_the_driver_dispatches_search_leaders_first(tmp_path, monkeypatch):
    specs = plan_grid(["gmp", "demp"], [0.9, 0.95], [0, 1], {}, dataset="synthetic", model="mlp",
                      epochs=1, batch_size=64, lr=0.1, threads=1)
    dispatched = []

    def fake_run(spec, progress=None, workdir=None):
        dispatched.append(spec)
        return failed_result(spec, RuntimeError("not trained in this test"))
    monkeypatch.setattr(backends, "safe_run", fake_run)
    executors.execute(specs, RunStore(tmp_path), show_progress=False)
    assert dispatched == calibration.searches_first(specs)
    assert [(s.method, s.target_sparsity) for s in dispatched[:2]] == [("demp", 0.9), ("demp", 0.95)]
