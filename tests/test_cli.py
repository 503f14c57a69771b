"""The CLI end to end on synthetic data, resume, failed runs, bad input; one real-data run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--dataset", "synthetic", "--epochs", "2", "--batch-size", "64", "--no-progress"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run_benchmarks.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_grid_writes_every_output_and_a_rerun_runs_nothing(tmp_path, capsys):
    out = tmp_path / "res"
    args = [*FAST, "--methods", "magnitude", "gmp", "random", "--sparsities", "0.5", "0.9",
            "--seeds", "0", "1", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "14 runs: 14 ran, 0 already complete, 0 failed" in printed
    board = pd.read_csv(out / "leaderboard.csv")
    assert len(board) == 7  # dense + 3 methods × 2 sparsities
    assert set(board["method"]) == {"dense", "magnitude", "gmp", "random"}
    assert (board["n_seeds"] == 2).all()
    assert board.loc[board.method == "gmp", "sparsity"].round(4).tolist() == [0.5, 0.9]
    assert board["flag"].isna().all()  # no flags: every target met, no failed seed
    assert (out / "leaderboard.md").read_text().count("\n|") >= 8
    for name in ["sparsity_vs_accuracy.png", "dead_rate_dynamic.png", "layer_sparsity.png"]:
        assert (out / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = list((out / "runs").iterdir())
    assert len(runs) == 14
    result = json.loads((runs[0] / "result.json").read_text())
    assert result["status"] == "complete" and result["spec"]["dataset"] == "synthetic"
    # the same grid again: nothing new runs
    assert main(args) == 0
    assert "14 runs: 0 ran, 14 already complete, 0 failed" in capsys.readouterr().out


def test_a_failed_run_is_stored_and_the_grid_goes_on(tmp_path, capsys):
    out = tmp_path / "res"
    # magnitude may not touch the first layer (235k of 266k weights): 0.9 is unreachable
    code = main([*FAST, "--methods", "magnitude", "gmp", "--sparsities", "0.9", "--seeds", "0",
                 "--hp", "magnitude.prune_first=false", "--out", str(out), "--no-plots"])
    assert code == 1
    captured = capsys.readouterr()
    assert "3 runs: 2 ran, 0 already complete, 1 failed" in captured.out
    board = pd.read_csv(out / "leaderboard.csv").set_index("method")
    assert board.loc["magnitude[prune_first=False]", "flag"] == "all seeds failed"
    assert board.loc["gmp", "n_seeds"] == 1
    failed = [json.loads(p.read_text()) for p in (out / "runs").glob("*/result.json")]
    failed = [r for r in failed if r["status"] == "failed"]
    assert len(failed) == 1 and "unreachable" in failed[0]["error"]


def test_method_hyperparameter_flags_reach_the_runs(tmp_path):
    out = tmp_path / "res"
    assert main([*FAST, "--methods", "gmp", "--sparsities", "0.5", "--seeds", "0", "--no-dense-reference",
                 "--end-frac", "0.8", "--scope", "layer", "--out", str(out), "--no-plots"]) == 0
    (result,) = [json.loads(p.read_text()) for p in (out / "runs").glob("*/result.json")]
    assert result["spec"]["method_hparams"]["end_frac"] == 0.8
    assert result["spec"]["method_hparams"]["scope"] == "layer"
    assert result["label"] == "gmp[end_frac=0.8,scope=layer]"


@pytest.mark.parametrize("args, message", [
    (["--methods", "nope"], "unknown method 'nope'; choose from: dense, gmp, imp, magnitude, random"),
    (["--sparsities", "1.0"], "sparsity 1 is outside [0, 1)"),
    (["--sparsities", "-0.1"], "outside [0, 1)"),
    (["--epochs", "0"], "--epochs must be ≥ 1"),
    (["--model", "resnet99"], "unknown model 'resnet99'"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--preset", "huge"], "unknown preset 'huge'"),
    (["--epochs", "two"], "invalid int value"),
    (["--prune-fraction", "0.3", "--methods", "gmp"], "--prune-fraction is not a hyperparameter of"),
    (["--hp", "gmp.end_frac=2"], "end_frac must be in"),
    (["--hp", "gmp.colour=red"], "has no hyperparameter colour"),
    (["--hp", "gmp.end_frac"], "--hp expects METHOD.FIELD=VALUE"),
    (["--hp", "random.prune_at=0.2"], "method 'random' is not among --methods"),
    (["--workers", "0"], "--workers must be ≥ 1"),
    (["--lr", "0"], "--lr must be > 0"),
    (["--warmup-epochs", "2"], "--warmup-epochs must be smaller than --epochs"),
])
def test_bad_input_is_one_line_with_exit_code_2_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    assert main([*FAST, "--methods", "gmp", "--seeds", "0", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_the_script_itself_exits_2_without_a_traceback(tmp_path):
    proc = run_cli(*FAST, "--methods", "nope", "--out", str(tmp_path / "never"))
    assert proc.returncode == 2
    assert proc.stderr == ("run_benchmarks.py: error: unknown method 'nope'; choose from: "
                           "dense, gmp, imp, magnitude, random (or <base>+ap with base one of: "
                           "gmp, imp, magnitude, random)\n")


def test_missing_data_is_one_line_with_exit_code_2(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--dataset", "mnist", "--data-root", str(empty), "--no-download", "--epochs", "1",
                 "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MNIST not found" in err and "--data-root" in err
    assert not (tmp_path / "never").exists()


def test_list_names_every_registry(capsys):
    assert main(["--list"]) == 0
    listed = capsys.readouterr().out
    for name in ["gmp", "imp", "magnitude", "random", "dense", "ap", "mlp", "resnet20", "vgg16",
                 "fashion-mnist", "cifar100", "synthetic", "quick"]:
        assert f"  {name} " in listed


FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.mark.realdata
def test_real_fashion_mnist_run(tmp_path):
    """CI installs Fashion-MNIST (scripts/prunebench.sh); there this test must run, not skip."""
    if not FMNIST.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{FMNIST} missing in CI: the setup script should have installed it")
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    out = tmp_path / "res"
    proc = run_cli("--dataset", "fashion-mnist", "--model", "mlp", "--methods", "magnitude",
                   "--sparsities", "0.9", "--seeds", "0", "--epochs", "2", "--no-progress", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    board = pd.read_csv(out / "leaderboard.csv").set_index("method")
    assert board.loc["dense", "top1"] > 0.85
    assert board.loc["magnitude", "top1"] > 0.83
    assert board.loc["magnitude", "sparsity"] == pytest.approx(0.9, abs=1e-4)
