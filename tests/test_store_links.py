"""Never outside ``--out``: the store neither reads nor writes through a symbolic link (issue 15, item 4)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.store.files import atomic_write_bytes, real_folder
from benchmark.store.run_store import RunStore
from helpers import make_result


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name → bytes), to prove nothing was written there."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder outside the results folder holding a valid-looking result (what a link points to)."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "result.json").write_text(json.dumps(make_result()))
    (folder / "keep.txt").write_text("not the store's")
    return folder


def linked_run(tmp_path: Path, outside: Path) -> tuple[RunStore, str]:
    """A store whose run folder ``runs/<run_id>`` is a symbolic link to ``outside``."""
    store = RunStore(tmp_path / "results")
    run_id = make_result()["run_id"]
    store.runs_dir.mkdir(parents=True)
    store.run_dir(run_id).symlink_to(outside, target_is_directory=True)
    return store, run_id


def test_a_linked_run_folder_is_reported_and_not_read(tmp_path, outside):
    store, run_id = linked_run(tmp_path, outside)
    assert store.inspect(run_id) == (None, f"runs/{run_id} is a symbolic link; not read")
    assert store.load(run_id) is None and not store.is_complete(run_id)
    assert list(store.iter_results()) == [] and store.frame().empty
    assert store.problems() == [(store.run_dir(run_id) / "result.json",
                                 f"runs/{run_id} is a symbolic link; not read")]
    assert store.problems([run_id]) == store.problems()


def test_a_dangling_linked_run_folder_is_reported_too(tmp_path):
    store, run_id = linked_run(tmp_path, tmp_path / "gone")
    assert store.run_ids() == [run_id]
    assert "is a symbolic link; not read" in store.problems()[0][1]


def test_a_linked_result_file_is_reported_and_not_read(tmp_path, outside):
    store = RunStore(tmp_path / "results")
    run_id = make_result()["run_id"]
    store.run_dir(run_id).mkdir(parents=True)
    (store.run_dir(run_id) / "result.json").symlink_to(outside / "result.json")
    why = f"runs/{run_id}/result.json is a symbolic link; not read"
    assert store.inspect(run_id) == (None, why)
    assert store.problems() == [(store.run_dir(run_id) / "result.json", why)]


def test_a_linked_runs_folder_is_one_problem_and_nothing_under_it_is_read(tmp_path, outside):
    store = RunStore(tmp_path / "results")
    store.root.mkdir()
    (outside / "runs" / make_result()["run_id"]).mkdir(parents=True)
    (outside / "runs" / make_result()["run_id"] / "result.json").write_text(json.dumps(make_result()))
    store.runs_dir.symlink_to(outside / "runs", target_is_directory=True)
    assert store.run_ids() == []
    assert store.problems() == [(store.runs_dir, "runs is a symbolic link; not read")]
    assert store.inspect(make_result()["run_id"]) == (None, "runs is a symbolic link; not read")


def test_save_never_writes_through_a_linked_run_folder(tmp_path, outside):
    store, run_id = linked_run(tmp_path, outside)
    before = snapshot(outside)
    with pytest.raises(OSError, match=f"runs/{run_id} is a symbolic link"):
        store.save(make_result(top1=0.5))
    assert snapshot(outside) == before


def test_claim_folder_replaces_the_link_by_a_real_folder_and_save_writes_inside(tmp_path, outside):
    store, run_id = linked_run(tmp_path, outside)
    before = snapshot(outside)
    folder = store.claim_folder(run_id)
    assert folder == store.run_dir(run_id)
    assert folder.is_dir() and not folder.is_symlink() and os.listdir(folder) == []
    path = store.save(make_result(top1=0.5))
    assert path == folder / "result.json" and path.resolve().is_relative_to(store.root.resolve())
    assert store.load(run_id)["metrics"]["top1"] == 0.5 and store.problems() == []
    assert snapshot(outside) == before                      # the link's target is untouched
    assert store.claim_folder(run_id) == folder and store.load(run_id) is not None   # idempotent


def test_claim_folder_replaces_a_linked_runs_folder_and_links_inside_the_run_folder(tmp_path, outside):
    store = RunStore(tmp_path / "results")
    run_id = make_result()["run_id"]
    store.root.mkdir()
    store.runs_dir.symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    folder = store.claim_folder(run_id)
    assert not store.runs_dir.is_symlink() and store.runs_dir.is_dir()
    (folder / "checkpoint.pt").symlink_to(outside / "keep.txt")       # a planted link in a real folder
    (folder / "lock").symlink_to(outside / "keep.txt")
    assert store.claim_folder(run_id) == folder and os.listdir(folder) == []
    assert snapshot(outside) == before


def test_atomic_write_refuses_a_folder_resolving_outside_its_root(tmp_path, outside):
    root = tmp_path / "results"
    root.mkdir()
    (root / "plots").symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    with pytest.raises(OSError, match="plots/new/figure.png.*outside the results folder"):
        atomic_write_bytes(root / "plots" / "new" / "figure.png", b"png", inside=root)
    assert snapshot(outside) == before and not (outside / "new").exists()   # no folder made there
    assert atomic_write_bytes(root / "a" / "b.txt", b"ok", inside=root).read_bytes() == b"ok"


def test_real_folder_creates_the_root_and_refuses_a_file_in_the_way(tmp_path):
    root = tmp_path / "new" / "results"
    assert real_folder(root, root / "calibration").is_dir()
    (root / "runs").write_text("a file")
    with pytest.raises(OSError):
        real_folder(root, root / "runs" / "x")
    assert (root / "runs").read_text() == "a file"


def test_a_rerun_recomputes_a_linked_run_into_a_real_folder(tmp_path, outside):
    """The issue's report end to end: ``runs/<run_id>`` linked elsewhere, then the grid is run again."""
    out = tmp_path / "results"
    args = ["--dataset", "synthetic", "--epochs", "1", "--batch-size", "64", "--no-progress", "--no-plots",
            "--methods", "magnitude", "--sparsities", "0.5", "--seeds", "0", "--out", str(out)]
    assert main(args) == 0
    store = RunStore(out)
    (run_id, *_) = store.run_ids()
    before = snapshot(outside)
    for entry in store.run_dir(run_id).iterdir():
        entry.unlink()
    store.run_dir(run_id).rmdir()
    store.run_dir(run_id).symlink_to(outside, target_is_directory=True)
    assert main(args) == 0
    assert not store.run_dir(run_id).is_symlink() and store.is_complete(run_id)
    assert snapshot(outside) == before


def test_the_reports_never_write_or_delete_through_a_linked_plots_folder(tmp_path, outside):
    """``<out>/plots`` linked elsewhere: the figures go into a real folder, the link's target untouched."""
    out = tmp_path / "results"
    args = ["--dataset", "synthetic", "--epochs", "1", "--batch-size", "64", "--no-progress",
            "--executor", "inline", "--methods", "magnitude", "--sparsities", "0.5", "--seeds", "0",
            "--out", str(out)]
    out.mkdir()
    (outside / "sparsity_vs_accuracy.png").write_bytes(b"not ours")
    (out / "plots").symlink_to(outside, target_is_directory=True)
    assert main(args) == 0
    assert not (out / "plots").is_symlink() and (out / "plots" / "sparsity_vs_accuracy.png").is_file()
    assert (outside / "sparsity_vs_accuracy.png").read_bytes() == b"not ours"
