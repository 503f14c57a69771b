"""AP in the harness: x+ap against x in real runs, the CLI, and the paired AP-effect report."""
import json
import math

import pandas as pd
import pytest
import torch

from benchmark.engine import train
from benchmark.report.ap_effect import AP_COLUMNS
from benchmark.cli import main
from benchmark.report.leaderboard import leaderboard
from benchmark.report.statistics import ci95_halfwidth
from benchmark.report.writer import write_reports
from benchmark.spec import RunSpec
from benchmark.store.run_store import RunStore
from resume import resumed_and_straight
from test_report import make_result

FAST = dict(dataset="synthetic", model="mlp", epochs=2, batch_size=64, lr=0.1, weight_decay=1e-4)
CASES = {  # base → (target, hyperparameters, epochs)
    "gmp": (0.8, {}, 2),
    "magnitude": (0.8, {}, 2),
    "imp": (0.8, {"prune_fraction": 0.5}, 1),  # 3 prune rounds, 4 × 1 epochs
}
REAL_BUILD, REAL_BATCHES = train.build, train.train_batches


def traced_run(monkeypatch, method: str, base: str, **hparams):
    """Run one spec; returns (result, initial state, label batches seen, final state, final masks)."""
    target, base_hp, epochs = CASES[base]
    spec = RunSpec(method=method, target_sparsity=target, seed=1, method_hparams={**base_hp, **hparams},
                   **{**FAST, "epochs": epochs})
    seen = {"batches": []}

    def build(spec, dataset, device):
        model, pruner = REAL_BUILD(spec, dataset, device)
        seen.update(init={k: v.clone() for k, v in model.state_dict().items()}, model=model, method=pruner)
        return model, pruner

    def batches(*args, **kwargs):
        for x, y in REAL_BATCHES(*args, **kwargs):
            seen["batches"].append(y.clone())
            yield x, y
    monkeypatch.setattr(train, "build", build)
    monkeypatch.setattr(train, "train_batches", batches)
    result = train.run(spec)
    return result, seen


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("base", list(CASES))
def test_x_plus_ap_with_share_zero_is_x_weight_for_weight(monkeypatch, base):
    x, seen_x = traced_run(monkeypatch, base, base)
    ap, seen_ap = traced_run(monkeypatch, base + "+ap", base, ap_share=0.0)
    assert same_tensors(seen_x["init"], seen_ap["init"])
    assert len(seen_x["batches"]) == len(seen_ap["batches"]) > 0
    assert all(torch.equal(a, b) for a, b in zip(seen_x["batches"], seen_ap["batches"]))
    assert same_tensors(seen_x["model"].state_dict(), seen_ap["model"].state_dict())
    assert same_tensors(seen_x["method"].masks, seen_ap["method"].masks)
    assert x["metrics"]["top1"] == ap["metrics"]["top1"]
    assert ap["label"].startswith(f"{base}+ap[ap_share=0.0") and ap["spec"]["method"] == f"{base}+ap"


@pytest.mark.parametrize("base", ["gmp", "imp"])
def test_x_and_x_plus_ap_share_init_and_data_order_and_ap_changes_the_mask(monkeypatch, base):
    x, seen_x = traced_run(monkeypatch, base, base)
    ap, seen_ap = traced_run(monkeypatch, base + "+ap", base)
    assert same_tensors(seen_x["init"], seen_ap["init"])
    assert all(torch.equal(a, b) for a, b in zip(seen_x["batches"], seen_ap["batches"]))
    assert not same_tensors(seen_x["method"].masks, seen_ap["method"].masks)
    assert x["metrics"]["sparsity"] == ap["metrics"]["sparsity"] == pytest.approx(0.8, abs=1e-5)
    events = seen_ap["method"].ap_events
    assert events and all(e.by_ap == e.ap_target == round(0.1 * e.removed) for e in events)


def test_an_interrupted_imp_ap_run_resumes_with_its_reference_and_matches(tmp_path):
    spec = RunSpec(method="imp+ap", target_sparsity=0.75, seed=0, checkpoint_every=1,
                   method_hparams={"prune_fraction": 0.5}, **{**FAST, "epochs": 1})

    resumed_and_straight(spec, tmp_path)


# ---------------------------------------------------------------------------------------------
# the CLI

CLI = ["--dataset", "synthetic", "--epochs", "1", "--batch-size", "64", "--no-progress",
       "--executor", "inline"]


def test_cli_runs_x_beside_x_plus_ap_and_reports_the_paired_effect(tmp_path, capsys):
    out = tmp_path / "res"
    assert main([*CLI, "--methods", "gmp", "gmp+ap", "imp", "imp+ap", "--sparsities", "0.5",
                 "--seeds", "0", "1", "--ap-share", "0.2", "--out", str(out)]) == 0
    assert "10 runs: 10 ran, 0 already complete, 0 failed" in capsys.readouterr().out
    board = pd.read_csv(out / "leaderboard.csv").set_index("method")
    assert set(board.index) == {"dense", "gmp", "imp", "gmp+ap[ap_share=0.2]", "imp+ap[ap_share=0.2]"}
    start = list(board.columns).index(AP_COLUMNS[0])
    assert list(board.columns[start:start + len(AP_COLUMNS)]) == AP_COLUMNS
    for base in ["gmp", "imp"]:
        row = board.loc[f"{base}+ap[ap_share=0.2]"]
        assert row["ap_base"] == base and row["ap_seeds"] == 2 and math.isfinite(row["ap_delta_dnr_ci95"])
        assert row["ap_base_top1"] == pytest.approx(board.loc[base, "top1"])
        assert row["ap_delta_top1"] == pytest.approx(row["top1"] - board.loc[base, "top1"])
        assert row["epochs"] == board.loc[base, "epochs"]  # imp+ap: (rounds + 1) × epochs, as imp
        assert board.loc[base, ["ap_seeds", "ap_delta_top1"]].isna().all()
    assert board.loc["imp", "epochs"] == 5
    specs = [json.loads(p.read_text())["spec"] for p in (out / "runs").glob("*/result.json")]
    hparams = {spec["method"]: spec["method_hparams"] for spec in specs}
    assert hparams["gmp+ap"]["ap_share"] == 0.2 and "ap_share" not in hparams["gmp"]
    markdown = (out / "leaderboard.md").read_text()
    assert "## AP effect: x+ap against x at the same seeds" in markdown
    assert "| synthetic | mlp | gmp | gmp+ap[ap_share=0.2] | 50% | 2 |" in markdown
    assert (out / "plots" / "ap_effect.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["--methods", "dense+ap"], "'dense+ap': AP rides on prune events and 'dense' has none; bases that work: "
                                "dnr, gmp, granet, granet-st, imp, magnitude, random"),
    (["--methods", "ap"], "'ap' is a modifier, not a method"),
    (["--methods", "gmp+ap+ap"], "'gmp+ap+ap' applies ap more than once"),
    (["--methods", "gmp+ap", "--ap-share", "2"], "ap_share must be in [0.0, 1.0]"),
    (["--methods", "gmp", "--ap-share", "0.2"], "--ap-share is not a hyperparameter of the selected methods"),
    (["--methods", "imp", "--rewind", "reinit", "--rewind-epoch", "1"], "rewind_epoch must be 0"),
])
def test_bad_ap_input_is_one_line_with_exit_code_2(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    assert main([*CLI, "--seeds", "0", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# the AP-effect report, from hand-built results

TOP1 = {"gmp": [0.80, 0.84, 0.82], "gmp+ap": [0.82, 0.85, 0.85]}
DNR = {"gmp": [0.50, 0.52, 0.49], "gmp+ap": [0.45, 0.47, 0.49]}


def ap_store(tmp_path, seeds=(0, 1, 2), ap_seeds=(0, 1, 2), base_hparams=None) -> RunStore:
    store = RunStore(tmp_path)
    store.save(make_result("dense", 0.0, 0, 0.9))
    for method, wanted in [("gmp", seeds), ("gmp+ap", ap_seeds)]:
        for seed in wanted:
            hp = {"end_frac": 0.5, **({"ap_share": 0.1} if method == "gmp+ap" else base_hparams or {})}
            result = make_result(method, 0.9, seed, TOP1[method][seed], hparams=hp)
            result["metrics"]["dead_rate_dynamic"] = DNR[method][seed]
            store.save(result)
    return store


def test_the_ap_effect_is_paired_by_seed_with_a_paired_ci(tmp_path):
    board = leaderboard(ap_store(tmp_path).frame())
    row = board.set_index("method").loc["gmp+ap"]
    diffs = [a - b for a, b in zip(TOP1["gmp+ap"], TOP1["gmp"])]  # +0.02, +0.01, +0.03
    assert row["ap_base"] == "gmp" and row["ap_seeds"] == 3
    assert row["ap_delta_top1"] == pytest.approx(sum(diffs) / 3, abs=1e-12)
    assert row["ap_delta_top1_ci95"] == pytest.approx(ci95_halfwidth(diffs), abs=1e-12)
    assert row["ap_delta_top1_ci95"] < ci95_halfwidth(TOP1["gmp+ap"])  # pairing removes seed noise
    dnr = [a - b for a, b in zip(DNR["gmp+ap"], DNR["gmp"])]
    assert row["ap_delta_dnr"] == pytest.approx(sum(dnr) / 3, abs=1e-12)
    assert row["ap_delta_dnr_ci95"] == pytest.approx(ci95_halfwidth(dnr), abs=1e-12)
    assert row["ap_base_top1"] == pytest.approx(0.82) and row["ap_base_dnr"] == pytest.approx(1.51 / 3)


def test_only_seeds_present_in_both_are_paired(tmp_path):
    board = leaderboard(ap_store(tmp_path, seeds=(0, 1), ap_seeds=(1, 2)).frame()).set_index("method")
    row = board.loc["gmp+ap"]
    assert row["ap_seeds"] == 1 and row["ap_delta_top1"] == pytest.approx(0.85 - 0.84, abs=1e-12)
    assert math.isnan(row["ap_delta_top1_ci95"])


def test_a_base_with_other_hyperparameters_is_not_paired(tmp_path):
    store = ap_store(tmp_path, base_hparams={"end_frac": 0.8})
    board = leaderboard(store.frame()).set_index("method")
    assert board[AP_COLUMNS].isna().all().all()
    paths = write_reports(store, tmp_path / "report")
    assert "AP effect" not in paths.table and "ap_effect.png" not in {p.name for p in paths.plots}


def test_the_report_gets_an_ap_section_and_figure(tmp_path):
    paths = write_reports(ap_store(tmp_path), tmp_path / "report")
    row = ("| synthetic | mlp | gmp | gmp+ap | 90% | 3 | 82.00 | 84.00 | +2.00 ± 2.48 | 50.33 | 47.00 "
           "| -3.33 ± 7.17 |")
    assert row in paths.table
    assert "ap_effect.png" in {p.name for p in paths.plots}
