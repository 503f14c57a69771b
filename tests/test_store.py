"""RunStore: atomic JSON persistence of run results and the DataFrame view (no torch)."""
from __future__ import annotations

import json
import math
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest

from benchmark.store import CORE_COLUMNS, RunStore, json_safe


def make_result(run_id: str = "aaaaaaaaaaaa", *, seed: int = 0, status: str = "complete",
                top1: float | None = 0.88, cell_id: str = "c1") -> dict:
    """A small hand-built result dict in the shape benchmark/train.py produces."""
    result = {
        "run_id": run_id, "cell_id": cell_id, "status": status, "error": None, "label": "gmp",
        "spec": {"dataset": "synthetic", "model": "mlp", "activation": "relu", "method": "gmp",
                 "method_hparams": {"scope": "global", "start_frac": 0.1}, "target_sparsity": 0.9,
                 "seed": seed, "epochs": 10, "batch_size": 128, "lr": 0.1, "device": "auto"},
        "environment": {"torch": "2.5.0", "python": "3.11.7", "device": "cpu"},
        "metrics": {"top1": top1, "sparsity": 0.9, "params": 1000, "params_nonzero": 100,
                    "macs_dense": 500, "macs_sparse": 50, "epochs": 9, "val_top1": None},
        "layer_sparsity": {"layers.0.weight": 0.91, "layers.2.weight": 0.7},
        "history": [{"epoch": 1, "top1": 0.8, "dead_rate_dynamic": 0.5}],
    }
    if status == "failed":
        result.update(error="RuntimeError: boom", metrics={}, environment={})
    return result


def test_save_load_roundtrip(tmp_path):
    store = RunStore(tmp_path)
    result = make_result()
    path = store.save(result)
    assert path == tmp_path / "runs" / "aaaaaaaaaaaa" / "result.json"
    assert store.load("aaaaaaaaaaaa") == result
    assert store.is_complete("aaaaaaaaaaaa")
    assert store.load("bbbbbbbbbbbb") is None
    assert not store.is_complete("bbbbbbbbbbbb")


def test_failed_run_is_not_complete(tmp_path):
    store = RunStore(tmp_path)
    store.save(make_result(status="failed"))
    assert store.load("aaaaaaaaaaaa")["status"] == "failed"
    assert not store.is_complete("aaaaaaaaaaaa")


def test_save_leaves_no_temp_files_and_overwrites(tmp_path):
    store = RunStore(tmp_path)
    store.save(make_result(top1=0.5))
    store.save(make_result(top1=0.6))
    assert os.listdir(store.run_dir("aaaaaaaaaaaa")) == ["result.json"]
    assert store.load("aaaaaaaaaaaa")["metrics"]["top1"] == 0.6


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    store.save(make_result(top1=0.5))

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        store.save(make_result(top1=0.6))
    monkeypatch.undo()
    assert os.listdir(store.run_dir("aaaaaaaaaaaa")) == ["result.json"]
    assert store.load("aaaaaaaaaaaa")["metrics"]["top1"] == 0.5


def test_temp_names_are_unique_per_write_and_hold_the_pid(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    sources = []
    real_replace = os.replace

    def spy(src, dst):
        sources.append(os.path.basename(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    store.save(make_result())
    store.save(make_result())
    assert len(sources) == 2 and sources[0] != sources[1]
    assert all(str(os.getpid()) in name and name.startswith(".result.json.tmp.") for name in sources)


def _hammer(root: str, worker: int) -> None:
    store = RunStore(root)
    for i in range(15):
        store.save(make_result("shared000000", top1=worker + i / 100))  # all write the same run
        store.save(make_result(f"w{worker}r{i:02d}aaaaa", seed=i))       # and runs of their own


def test_concurrent_saves_from_several_processes(tmp_path):
    with ProcessPoolExecutor(max_workers=4) as pool:
        list(pool.map(_hammer, [str(tmp_path)] * 4, range(4)))
    store = RunStore(tmp_path)
    assert store.load("shared000000") is not None
    assert len(list(store.iter_results())) == 1 + 4 * 15
    leftovers = [p for p in (tmp_path / "runs").rglob("*") if p.is_file() and p.name != "result.json"]
    assert leftovers == []


@pytest.mark.parametrize("content", ['{"run_id": "aaaaaaaaaaaa", "status": "compl', "", "[1, 2]", "\xff\xfe"])
def test_corrupt_or_truncated_file_is_treated_as_absent(tmp_path, content):
    store = RunStore(tmp_path)
    store.save(make_result("bbbbbbbbbbbb"))
    path = store.run_dir("aaaaaaaaaaaa") / "result.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(content.encode("latin-1"))
    assert store.load("aaaaaaaaaaaa") is None
    assert not store.is_complete("aaaaaaaaaaaa")
    assert [r["run_id"] for r in store.iter_results()] == ["bbbbbbbbbbbb"]
    assert list(store.frame()["run_id"]) == ["bbbbbbbbbbbb"]


def test_nan_inf_and_numpy_values_are_stored_as_plain_json(tmp_path):
    store = RunStore(tmp_path)
    result = make_result(top1=float("nan"))
    result["metrics"].update(sparsity=np.float32(0.5), params=np.int64(7), train_time_s=float("inf"),
                             neuron_sparsity=np.float64("nan"))
    result["layer_sparsity"] = {"a": np.array([0.25])[0], "b": np.array([1, 2])}
    result["history"][0]["flag"] = np.bool_(True)
    text = store.save(result).read_text()
    assert "NaN" not in text and "Infinity" not in text
    metrics = store.load(result["run_id"])["metrics"]
    assert metrics["top1"] is None and metrics["train_time_s"] is None and metrics["neuron_sparsity"] is None
    assert metrics["sparsity"] == 0.5 and type(metrics["sparsity"]) is float
    assert metrics["params"] == 7 and type(metrics["params"]) is int
    loaded = store.load(result["run_id"])
    assert loaded["layer_sparsity"] == {"a": 0.25, "b": [1, 2]}
    assert loaded["history"][0]["flag"] is True


def test_json_safe_rejects_unknown_objects_with_their_key():
    with pytest.raises(TypeError, match=r"result\.metrics\.bad"):
        json_safe({"metrics": {"bad": object()}})
    assert json_safe((1, float("-inf"))) == [1, None]


def test_run_dir_rejects_path_like_ids(tmp_path):
    store = RunStore(tmp_path)
    for bad in ["../evil", "a/b", "", ".hidden"]:
        with pytest.raises(ValueError):
            store.run_dir(bad)
    with pytest.raises(ValueError):
        store.save({"status": "complete"})


def test_iter_results_sorted_and_ignores_folders_without_result(tmp_path):
    store = RunStore(tmp_path)
    for run_id in ["cccccccccccc", "aaaaaaaaaaaa", "bbbbbbbbbbbb"]:
        store.save(make_result(run_id))
    (tmp_path / "runs" / "dddddddddddd").mkdir()  # e.g. only a checkpoint so far
    assert [r["run_id"] for r in store.iter_results()] == ["aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"]


def test_frame_columns_and_rows(tmp_path):
    store = RunStore(tmp_path)
    store.save(make_result("aaaaaaaaaaaa", seed=0))
    store.save(make_result("bbbbbbbbbbbb", seed=1, top1=None))
    store.save(make_result("cccccccccccc", seed=2, status="failed"))
    frame = store.frame()
    assert len(frame) == 3
    assert list(frame.columns[:5]) == CORE_COLUMNS
    for column in ["dataset", "model", "method", "target_sparsity", "seed", "lr", "method_hparams",
                   "top1", "sparsity", "params_nonzero", "macs_sparse", "device", "spec_epochs", "epochs",
                   "spec_device"]:
        assert column in frame.columns, column
    first = frame.iloc[0]
    assert json.loads(first["method_hparams"]) == {"scope": "global", "start_frac": 0.1}
    assert first["spec_epochs"] == 10 and first["epochs"] == 9  # planned vs trained
    assert first["device"] == "cpu" and first["spec_device"] == "auto"
    assert list(frame["seed"]) == [0, 1, 2]
    assert pd.api.types.is_float_dtype(frame["top1"])
    assert frame["top1"].iloc[0] == 0.88 and math.isnan(frame["top1"].iloc[1])
    failed = frame.iloc[2]
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: boom"
    assert math.isnan(failed["top1"]) and pd.isna(failed["device"])


def test_frame_filters_by_run_ids(tmp_path):
    store = RunStore(tmp_path)
    for i, run_id in enumerate(["aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"]):
        store.save(make_result(run_id, seed=i))
    frame = store.frame(["cccccccccccc", "aaaaaaaaaaaa", "ffffffffffff"])
    assert list(frame["run_id"]) == ["aaaaaaaaaaaa", "cccccccccccc"]
    assert store.frame([]).empty


def test_empty_store_gives_empty_frame_with_core_columns(tmp_path):
    frame = RunStore(tmp_path / "nothing_here").frame()
    assert frame.empty
    assert list(frame.columns[:5]) == CORE_COLUMNS
    assert {"top1", "sparsity", "target_sparsity", "device"} <= set(frame.columns)
    assert list(RunStore(tmp_path).iter_results()) == []
