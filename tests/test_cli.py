"""The CLI end to end on synthetic data, resume, failed runs, bad input; one real-data run."""
import json
import os
import importlib.util
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import methods
from benchmark.checks import oversubscription_problem
from benchmark.cli import main
from benchmark.flags import build_parser, hparam_flags

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--dataset", "synthetic", "--epochs", "2", "--batch-size", "64", "--no-progress",
        "--executor", "inline"]


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
    # no flags (every target met, no failed seed) but a random mask's runs at chance on this tiny budget
    assert board.loc[board["method"] != "random", "flag"].isna().all()
    assert board["flag"].fillna("").str.fullmatch(r"(\d/2 seeds at chance)?").all()
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


class Boom(methods.PruningMethod):
    """A method that raises in the middle of training."""

    name = "boom"
    description = "raises at step 3 (tests only)"

    def after_step(self, step):
        if step == 3:
            raise RuntimeError("boom at step 3")
        super().after_step(step)


def test_a_method_that_raises_is_stored_with_its_traceback_and_the_grid_goes_on(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(methods._REGISTRY, "boom", Boom)
    out = tmp_path / "res"
    code = main([*FAST, "--methods", "boom", "gmp", "--sparsities", "0.9", "--seeds", "0", "1",
                 "--out", str(out), "--no-plots"])
    assert code == 1
    captured = capsys.readouterr()
    assert "6 runs: 4 ran, 0 already complete, 2 failed" in captured.out
    assert "2 of 6 runs failed (2 errors)" in captured.err
    assert captured.err.count("RuntimeError: boom at step 3") == 2
    board = pd.read_csv(out / "leaderboard.csv").set_index("method")
    assert board.loc["boom", "flag"] == "all seeds failed (2 errors)"
    assert board.loc["gmp", "n_seeds"] == 2 and pd.isna(board.loc["gmp", "flag"])
    results = [json.loads(p.read_text()) for p in (out / "runs").glob("*/result.json")]
    failed = [r for r in results if r["status"] == "failed"]
    assert len(failed) == 2
    for result in failed:
        assert result["failure"] == {"reason": "error"} and result["error"] == "RuntimeError: boom at step 3"
        assert "Traceback" in result["traceback"] and "after_step" in result["traceback"]


def test_a_diverging_grid_fails_every_run_as_diverged_and_exits_1(tmp_path, capsys):
    out = tmp_path / "res"
    code = main([*FAST, "--methods", "gmp", "--sparsities", "0.5", "--seeds", "0", "--lr", "1e6",
                 "--out", str(out), "--no-plots"])
    assert code == 1
    captured = capsys.readouterr()
    assert "2 runs: 0 ran, 0 already complete, 2 failed" in captured.out
    assert "2 of 2 runs failed (2 diverged)" in captured.err
    assert "diverged: non-finite training loss at epoch 1, step" in captured.err
    board = pd.read_csv(out / "leaderboard.csv").set_index("method")
    assert board.loc["gmp", "flag"] == "all seeds failed (1 diverged)"
    (result,) = [json.loads(p.read_text()) for p in (out / "runs").glob("*/result.json")
                 if json.loads(p.read_text())["spec"]["method"] == "gmp"]
    assert result["failure"]["reason"] == "diverged" and result["failure"]["epoch"] == 1
    assert result["failure"]["step"] >= 1


def test_cuda_out_of_memory_is_reported_as_such():
    from benchmark.execution.runs import failed_result
    from benchmark.spec import RunSpec
    import torch
    result = failed_result(RunSpec(method="gmp", target_sparsity=0.5),
                           torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert result["failure"] == {"reason": "cuda_oom"}
    assert result["error"] == "cuda_oom: CUDA out of memory. Tried to allocate 2 GiB"


def test_method_hyperparameter_flags_reach_the_runs(tmp_path):
    out = tmp_path / "res"
    assert main([*FAST, "--methods", "gmp", "--sparsities", "0.5", "--seeds", "0", "--no-dense-reference",
                 "--end-frac", "0.8", "--scope", "layer", "--out", str(out), "--no-plots"]) == 0
    (result,) = [json.loads(p.read_text()) for p in (out / "runs").glob("*/result.json")]
    assert result["spec"]["method_hparams"]["end_frac"] == 0.8
    assert result["spec"]["method_hparams"]["scope"] == "layer"
    assert result["label"] == "gmp[end_frac=0.8,scope=layer]"


NO_CUDA = not torch.cuda.is_available()
CORE_METHODS = ("demp, dense, dnr, gmp, granet, granet-st, grda, imp, magnitude, random, rigl, set (or "
                "<base>+ap with base one of: dnr, gmp, granet, granet-st, imp, magnitude, random)")


@pytest.mark.parametrize("args, message", [
    (["--methods", "nope"], f"unknown method 'nope'; choose from: {CORE_METHODS}"),
    (["--methods", "magnitud"], "unknown method 'magnitud' (did you mean 'magnitude'?); choose from:"),
    (["--sparsities", "1.0"], "sparsity 1 is outside [0, 1)"),
    (["--sparsities", "-0.1"], "outside [0, 1)"),
    (["--sparsities", "nan"], "argument --sparsities: expected a finite number, got 'nan'"),
    (["--epochs", "0"], "--epochs must be ≥ 1"),
    (["--model", "resnet99"], "unknown model 'resnet99'"),
    (["--model", "lenet"], "(did you mean 'lenet5'?)"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--dataset", "fashion_mnist"], "(did you mean 'fashion-mnist'?)"),
    (["--activation", "relu6"], "unknown activation 'relu6' (did you mean 'relu'?)"),
    (["--preset", "huge"], "unknown preset 'huge'"),
    (["--preset", "quik"], "unknown preset 'quik' (did you mean 'quick'?)"),
    (["--epochs", "two"], "invalid int value"),
    (["--prune-fraction", "0.3", "--methods", "gmp"], "--prune-fraction is not a hyperparameter of"),
    (["--hp", "gmp.end_frac=2"], "end_frac must be in"),
    (["--hp", "gmp.end_frac=nan"], "gmp.end_frac: expected a finite number, got 'nan'"),
    (["--end-frac", "inf"], "gmp.end_frac: expected a finite number"),
    (["--hp", "gmp.colour=red"], "has no hyperparameter colour"),
    (["--hp", "gmp.end_frak=0.5"], "has no hyperparameter end_frak (did you mean 'end_frac'?)"),
    (["--hp", "gmp.end_frac"], "--hp expects METHOD.FIELD=VALUE"),
    (["--hp", "random.prune_at=0.2"], "method 'random' is not among --methods"),
    (["--workers", "0"], "--workers must be ≥ 1"),
    (["--threads", "0"], "--threads must be ≥ 1"),
    (["--lr", "0"], "--lr must be > 0"),
    (["--lr", "nan"], "argument --lr: expected a finite number, got 'nan'"),
    (["--lr", "inf"], "argument --lr: expected a finite number, got 'inf'"),
    (["--lr=-inf"], "argument --lr: expected a finite number"),
    (["--weight-decay", "nan"], "argument --weight-decay: expected a finite number"),
    (["--momentum", "nan"], "argument --momentum: expected a finite number"),
    (["--sparsity-tolerance", "nan"], "argument --sparsity-tolerance: expected a finite number"),
    (["--gpus-per-run", "inf"], "argument --gpus-per-run: expected a finite number"),
    (["--warmup-epochs", "2"], "--warmup-epochs must be smaller than --epochs"),
    (["--device", "tpu"], "unknown device 'tpu'; use auto, cpu, cuda or cuda:N"),
    (["--device", "meta"], "device 'meta' is not supported"),
    pytest.param(["--device", "cuda"], "device 'cuda' requested but CUDA is not available",
                 marks=pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")),
    # the first layer holds 235k of the MLP's 266k weights: 0.9 cannot be met without it
    (["--sparsities", "0.1", "0.9", "--hp", "gmp.prune_first=false"],
     "gmp at sparsity 0.9: sparsity 0.9 is unreachable"),
    (["--sparsities", "0.9", "--interval", "100000"], "gmp at sparsity 0.9: gmp: the prune interval"),
    (["--sparsities", "0.9", "--epochs", "1", "--batch-size", "2048", "--hp", "gmp.end_frac=0.5"],
     "gmp: the prune window [0.0, 0.5] of 1 steps holds no step"),
    (["--methods", "imp", "--rewind-epoch", "5"], "imp: rewind_epoch 5.0 is beyond the first round"),
    (["--methods", "granet", "--death-rate", "1"], "death_rate must be in [0, 1); got 1.0"),
    (["--methods", "granet-st", "gmp", "--sparsities", "0.3", "0.9"],
     "granet-st at sparsity 0.3: granet-st: initial_sparsity 0.5 is above the target sparsity 0.3"),
    (["--methods", "rigl", "granet", "--growth", "momentum"], "growth must be one of gradient, random"),
    (["--methods", "set", "--hp", "set.end_frac=0"], "need start_frac < end_frac"),
    # no abbreviations: a partial or mistyped flag is an error with the nearest flag
    (["--sparsity", "0.5"], "unknown flag --sparsity (did you mean --sparsities?)"),
    (["--epoch", "3"], "unknown flag --epoch (did you mean --epochs?)"),
    (["--sparsities", "0.5", "--lrr=0.1"], "unknown flag --lrr (did you mean --lr?)"),
    # checked before anything runs, each naming its flag
    (["--val-fraction", "0.9999"], "--val-fraction 0.9999 leaves an empty split: 0 of the 2048"),
    (["--seeds", "99999999999999999999"], "--seeds: seed 99999999999999999999 is outside [0, 4294967295]"),
    (["--sparsities", "0.9999999"], "gmp at sparsity 0.9999999: it keeps 0 of 266200 prunable weights, "
                                    "fewer than the 3 prunable layers"),
    (["--threads", "1000"], "--threads 1000 × 1 concurrent run(s) is more than this machine's"),
    (["--workers", "2"], "--workers applies to --executor local, not inline"),
    (["--device", "cpu:5"], "device 'cpu:5' does not exist: the CPU is one device, cpu"),
    (["--cpus-per-run", "0"], "--cpus-per-run must be > 0, got 0"),
    (["--sparsity-tolerance", "-1"], "--sparsity-tolerance must be ≥ 0, got -1"),
    (["--momentum", "1.5"], "--momentum must be in [0, 1), got 1.5"),
    pytest.param(["--gpus-per-run", "0.5"], "--gpus-per-run needs a GPU, and this machine has none",
                 marks=pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")),
    (["--procs-per-run", "0"], "--procs-per-run must be ≥ 1, got 0"),
    (["--procs-per-run", "2", "--batch-size", "1"], "--batch-size 1 is smaller than --procs-per-run 2"),
    (["--procs-per-run", "2", "--batch-size", "2047"],
     "the last batch of an epoch has 1 example(s) (2048 % --batch-size 2047), fewer than --procs-per-run 2"),
    (["--procs-per-run", "64"], "× 64 processes is more than this machine's"),
])
def test_bad_input_is_one_line_with_exit_code_2_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    assert main([*FAST, "--methods", "gmp", "--seeds", "0", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_an_output_folder_that_is_a_file_or_not_writable_is_refused_up_front(tmp_path, capsys):
    a_file = tmp_path / "results.txt"
    a_file.write_text("mine")
    for out, message in [(str(a_file), "is a file, not a folder"), ("", "--out must name a folder"),
                         ("  ", "--out must name a folder"),
                         ("/sys/prunebench-test/out", "is not writable")]:
        assert main([*FAST, "--methods", "gmp", "--seeds", "0", "--out", out]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert a_file.read_text() == "mine" and not Path("/sys/prunebench-test").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.txt"]


def test_the_script_itself_exits_2_without_a_traceback(tmp_path):
    proc = run_cli(*FAST, "--methods", "nope", "--out", str(tmp_path / "never"))
    assert proc.returncode == 2
    assert proc.stderr == f"run_benchmarks.py: error: unknown method 'nope'; choose from: {CORE_METHODS}\n"


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_missing_data_is_one_line_with_exit_code_2(tmp_path, capsys, dataset):
    """An empty --data-root is an error even where a system copy exists: no silent fallback."""
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--dataset", dataset, "--data-root", str(empty), "--no-download", "--epochs", "1",
                 "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MNIST not found" in err and str(empty) in err and "--data-root" in err
    assert "download=False" not in err and "--no-download" in err
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


def test_help_lists_every_flag_and_exits_0(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for flag in ["--methods", "--threads", "--executor", "--gpus-per-run", "--slurm-partition", "--compile",
                 "--ap-share", "--death-rate", "--lambda-peak", "--span-frac", "--c", "--mu", "--hp"]:
        assert flag in text, flag


def test_shared_flag_help_states_each_methods_own_default():
    """``lambda_peak`` is 1e-3 for dnr but 0 (searched) for demp: the help must not show one default."""
    flags = hparam_flags()
    assert flags["lambda_peak"][1].endswith("(default 0.0 for demp; 0.001 for dnr, dnr+ap)")
    assert flags["lambda_peak"][2] == ["demp", "dnr", "dnr+ap"]
    assert flags["patience"][1].endswith("(default 3)")


def test_every_wrong_execution_flag_gets_its_own_line(tmp_path, capsys):
    out = tmp_path / "never"
    assert main([*FAST, "--methods", "gmp", "--workers", "0", "--cpus-per-run", "0",
                 "--slurm-timeout-min", "0", "--out", str(out)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["run_benchmarks.py: error: --workers must be ≥ 1, got 0",
                     "run_benchmarks.py: error: --cpus-per-run must be > 0, got 0",
                     "run_benchmarks.py: error: --slurm-timeout-min must be ≥ 1, got 0"]
    assert not out.exists()


@pytest.mark.parametrize("executor, package, install", [("ray", "ray", "prunebench[ray]"),
                                                        ("submitit", "submitit", "prunebench[slurm]")])
def test_a_missing_executor_package_is_named_with_its_install_command(tmp_path, capsys, monkeypatch,
                                                                      executor, package, install):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == package else real(name, *a))
    out = tmp_path / "never"
    assert main([*FAST[:-2], "--methods", "gmp", "--executor", executor, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--executor {executor} needs" in err
    assert f"pip install '{install}'" in err
    assert not out.exists()


def test_oversubscription_is_allowed_when_asked_for():
    args = build_parser().parse_args([*FAST, "--threads", "1000", "--oversubscribe"])
    assert oversubscription_problem(args, 1000) is None
    args = build_parser().parse_args([*FAST, "--threads", "1000"])
    assert "--oversubscribe" in oversubscription_problem(args, 1000)
