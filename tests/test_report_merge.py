"""``python -m benchmark.report A B --out M``: merging results folders made on several machines equals one
folder holding every run; identical copies count once; conflicts are warned about and resolved by a
fixed rule; bad input is one line and exit code 2 with nothing written."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.report.__main__ import main
from benchmark.report.writer import write_reports
from benchmark.store.commands import record_command
from benchmark.store.merge import merge_stores
from benchmark.store.run_store import RunStore
from helpers import make_result

REPO = Path(__file__).resolve().parents[1]
REPORT_FILES = ("leaderboard.csv", "leaderboard.md", "leaderboard.tex", "report.html")


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch):
    monkeypatch.setattr("os.fsync", lambda fd: None)


def machine_runs(machine: int) -> list[dict]:
    """Machine 0 ran seeds 0 and 1, machine 1 seed 2 (and dense for every seed)."""
    seeds = [0, 1] if machine == 0 else [2]
    runs = [make_result("dense", 0.0, s, top1=0.92 - 0.01 * s) for s in seeds]
    runs += [make_result(m, t, s, top1=0.9 - 0.1 * t - 0.01 * i + 0.004 * s)
             for i, m in enumerate(["gmp", "magnitude"]) for t in (0.5, 0.9) for s in seeds]
    return runs


def folder(root: Path, results: list[dict]) -> RunStore:
    store = RunStore(root)
    for result in results:
        store.save(result)
    return store


def calibration(root: Path, key: str, method: str, value: float) -> None:
    (root / "calibration").mkdir(parents=True, exist_ok=True)
    record = {"key": key, "hparam": "c", "target": 0.9, "tolerance": 0.005, "seed": 0, "value": value,
              "sparsity": 0.899, "stop": "within tolerance", "within_tolerance": True,
              "recipe": {"method": method, "dataset": "synthetic", "model": "mlp",
                         "method_hparams": {"c": 0.0}},
              "probes": [{"value": value, "sparsity": 0.899, "epochs": 3, "time_s": 1.5, "result": {}}]}
    (root / "calibration" / f"{key}.json").write_text(json.dumps(record))


@pytest.fixture
def two_machines(tmp_path):
    """Folders a and b; b also holds a byte-for-byte copy of one of a's runs."""
    a = folder(tmp_path / "a", machine_runs(0))
    b = folder(tmp_path / "b", machine_runs(1))
    copied = a.run_ids()[0]
    shutil.copytree(a.run_dir(copied), b.run_dir(copied))
    record_command(a.root, ["--seeds", "0", "1", "--out", "a"], a.run_ids())
    record_command(b.root, ["--seeds", "2", "--out", "b"], b.run_ids())
    calibration(a.root, "searchA", "grda", 0.0123)
    calibration(b.root, "searchB", "demp", 0.0456)
    return a, b


def test_the_merge_equals_one_folder_holding_both(two_machines, tmp_path, capsys):
    a, b = two_machines
    both = folder(tmp_path / "both", machine_runs(0) + machine_runs(1))
    write_reports(both, both.root, plots=False)
    assert main([str(a.root), str(b.root), "--out", str(tmp_path / "merged"), "--no-plots"]) == 0
    merged = (tmp_path / "merged" / "leaderboard.csv").read_bytes()
    assert merged == (both.root / "leaderboard.csv").read_bytes()
    assert (tmp_path / "merged" / "leaderboard.tex").read_bytes() == \
        (both.root / "leaderboard.tex").read_bytes()
    captured = capsys.readouterr()
    assert captured.err == ""  # an identical copy is no conflict
    assert f"merged {len(both.run_ids())} runs from 2 folders (1 identical copy counted once, 0 conflicts)" \
        in captured.out
    assert "dense (no pruning)" in captured.out  # the pivot


def test_the_merged_report_shows_every_folders_commands_and_calibration_searches(two_machines, tmp_path):
    a, b = two_machines
    assert main([str(a.root), str(b.root), "--out", str(tmp_path / "m"), "--no-plots"]) == 0
    page = (tmp_path / "m" / "report.html").read_text(encoding="utf-8")
    assert "python run_benchmarks.py --seeds 0 1 --out a" in page
    assert "python run_benchmarks.py --seeds 2 --out b" in page
    assert "grda" in page and "0.0123" in page and "demp" in page and "0.0456" in page
    assert str(a.root) in page and str(b.root) in page
    assert "merged from 2 results folders" in page


def conflicting(tmp_path: Path, first: dict, second: dict) -> tuple[RunStore, RunStore]:
    base = machine_runs(0)
    return folder(tmp_path / "x", base + [first]), folder(tmp_path / "y", base + [second])


def test_two_different_results_for_one_run_are_a_conflict_the_first_folder_wins(tmp_path, capsys):
    x, y = conflicting(tmp_path, make_result("gmp", 0.9, 5, top1=0.81), make_result("gmp", 0.9, 5, top1=0.70))
    run_id = make_result("gmp", 0.9, 5)["run_id"]
    assert main([str(x.root), str(y.root), "--out", str(tmp_path / "m"), "--no-plots"]) == 0
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: ") and run_id in line
    assert str(x.layout.result_file(run_id)) in line
    assert str(y.layout.result_file(run_id)) in line and "folder listed first wins" in line
    kept = {r["run_id"]: r for r in merge_stores([x, y]).results}[run_id]
    assert kept["metrics"]["top1"] == 0.81
    assert {r["run_id"]: r for r in merge_stores([y, x]).results}[run_id]["metrics"]["top1"] == 0.70


@pytest.mark.parametrize("order", [0, 1])
def test_a_complete_result_wins_over_a_failed_one_whatever_the_order(tmp_path, order):
    x, y = conflicting(tmp_path, make_result("gmp", 0.9, 5, status="failed"),
                       make_result("gmp", 0.9, 5, top1=0.8))
    stores = [x, y] if order == 0 else [y, x]
    merged = merge_stores(stores)
    (conflict,) = merged.conflicts
    assert conflict.kept == y.layout.result_file(conflict.run_id)
    assert "complete result wins" in conflict.why
    assert {r["run_id"]: r for r in merged.results}[conflict.run_id]["status"] == "complete"


def error_of(capsys, *args: str) -> str:
    assert main(list(args)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("error: ")
    return line


def test_several_folders_need_out_and_nothing_is_written(two_machines, capsys):
    a, b = two_machines
    assert "needs --out" in error_of(capsys, str(a.root), str(b.root))
    assert "one of the folders being merged" in error_of(capsys, str(a.root), str(b.root),
                                                         "--out", str(a.root))
    for root in (a.root, b.root):
        assert not any((root / name).exists() for name in REPORT_FILES)


def test_a_missing_or_empty_folder_is_one_line_and_nothing_is_written(two_machines, tmp_path, capsys):
    a, _ = two_machines
    out = tmp_path / "m"
    assert "no such results folder" in error_of(capsys, str(a.root), str(tmp_path / "nope"),
                                                "--out", str(out))
    (tmp_path / "empty").mkdir()
    assert "no runs found in" in error_of(capsys, str(a.root), str(tmp_path / "empty"), "--out", str(out))
    (tmp_path / "file").write_text("x")
    assert "not a folder" in error_of(capsys, str(tmp_path / "file"))
    assert "not a folder" in error_of(capsys, str(a.root), "--out", str(tmp_path / "file"))
    assert "is not a method of these runs" in error_of(capsys, str(a.root), "--out", str(out),
                                                       "--reference", "granet")
    assert not out.exists()


def test_the_module_exits_2_without_a_traceback(two_machines):
    a, b = two_machines
    proc = subprocess.run([sys.executable, "-m", "benchmark.report", str(a.root), str(b.root)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""
