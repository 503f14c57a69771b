"""RunStore: atomic JSON persistence of run results, validation on read, the DataFrame view (no torch)."""
from __future__ import annotations

import json
import math
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest

from benchmark.store.run_store import CORE_COLUMNS, RunStore, json_safe
from benchmark.store.schema import SCHEMA_VERSION, with_checksum
from helpers import make_result


def test_save_load_roundtrip(tmp_path):
    store = RunStore(tmp_path)
    result = make_result()
    run_id = result["run_id"]
    path = store.save(result)
    assert path == tmp_path / "runs" / run_id / "result.json"
    assert store.load(run_id) == result
    assert store.is_complete(run_id)
    assert store.load("bbbbbbbbbbbb") is None
    assert not store.is_complete("bbbbbbbbbbbb")
    assert store.problems() == []


def test_failed_run_is_not_complete(tmp_path):
    store = RunStore(tmp_path)
    result = make_result(status="failed")
    store.save(result)
    assert store.load(result["run_id"])["status"] == "failed"
    assert not store.is_complete(result["run_id"])


def test_save_leaves_no_temp_files_and_overwrites(tmp_path):
    store = RunStore(tmp_path)
    store.save(make_result(top1=0.5))
    run_id = store.save(make_result(top1=0.6)).parent.name
    assert os.listdir(store.run_dir(run_id)) == ["result.json"]
    assert store.load(run_id)["metrics"]["top1"] == 0.6


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    store.save(make_result(top1=0.5))

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        store.save(make_result(top1=0.6))
    monkeypatch.undo()
    run_id = make_result()["run_id"]
    assert os.listdir(store.run_dir(run_id)) == ["result.json"]
    assert store.load(run_id)["metrics"]["top1"] == 0.5


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
        store.save(make_result(top1=worker / 10 + i / 100))        # all write the same run
        store.save(make_result(seed=1 + worker * 100 + i))         # and runs of their own


def test_concurrent_saves_from_several_processes(tmp_path):
    with ProcessPoolExecutor(max_workers=4) as pool:
        list(pool.map(_hammer, [str(tmp_path)] * 4, range(4)))
    store = RunStore(tmp_path)
    assert store.load(make_result()["run_id"]) is not None
    assert len(list(store.iter_results())) == 1 + 4 * 15
    assert store.problems() == []
    leftovers = [p for p in (tmp_path / "runs").rglob("*") if p.is_file() and p.name != "result.json"]
    assert leftovers == []


def _edited(**changes):
    """A result changed by the harness itself (resealed): it must fail on what was changed."""
    result = make_result()
    result.update(changes)
    return json.dumps(with_checksum(result))


def _with_metrics(**changes):
    result = make_result()
    result["metrics"].update(changes)
    return json.dumps(with_checksum(result))


def _without(key):
    result = make_result()
    del result[key]
    return json.dumps(with_checksum(result))


def _by_hand(top1):
    """A result whose top-1 was edited in the file (not resealed)."""
    result = make_result()
    result["metrics"]["top1"] = top1
    return json.dumps(result)


@pytest.mark.parametrize("content, why", [
    ('{"run_id": "x", "status": "compl', "not valid JSON"),          # truncated mid-write
    ("", "empty"),
    ("[1, 2]", "not a JSON object"),
    ("\xff\xfe", "unreadable"),
    ('{"hello": "world"}', "schema_version None"),                   # a foreign file
    (json.dumps(with_checksum({"schema_version": SCHEMA_VERSION, "status": "complete"})),
     "does not match its folder"),
    (_edited(schema_version=1), "schema_version 1"),
    (_edited(schema_version=2), "schema_version 2"),                  # before checksums: recomputed
    (_by_hand(0.999), "its checksum does not match its content (edited?)"),
    (json.dumps({k: v for k, v in make_result().items() if k != "checksum"}), "no checksum"),
    (json.dumps({**make_result(), "checksum": None}), "no checksum"),
    (json.dumps({**make_result(), "checksum": "sha256:0"}), "checksum does not match"),
    (_edited(status="done"), "status 'done'"),
    (_edited(spec={**make_result()["spec"], "lr": 0.5}), "its spec hashes to run id"),   # edited
    (_edited(cell_id="c1"), "cell_id 'c1' does not match"),
    (_without("spec"), "no spec"),
    (_edited(metrics={"top1": 0.9}), "a complete run without"),
    (_with_metrics(top1=None), "metric top1 is None"),
    (_with_metrics(top1=1.5), "outside [0, 1]"),
    (_with_metrics(sparsity="0.9"), "not a number"),
    (_edited(history=[]), "history"),
    (_edited(status="failed", error=""), "failed run without its error"),
])
def test_untrusted_files_are_reported_and_never_count(tmp_path, content, why):
    store = RunStore(tmp_path)
    other = make_result(seed=1)
    store.save(other)
    run_id = make_result()["run_id"]
    path = store.run_dir(run_id) / "result.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(content.encode("latin-1"))
    assert store.load(run_id) is None
    assert not store.is_complete(run_id)
    assert [r["run_id"] for r in store.iter_results()] == [other["run_id"]]
    assert list(store.frame()["run_id"]) == [other["run_id"]]
    ((where, reason),) = store.problems()
    assert where == path and why in reason, reason
    assert store.problems([run_id]) == [(path, reason)]
    assert store.problems([other["run_id"]]) == []


def test_a_valid_result_in_the_wrong_folder_is_not_trusted(tmp_path):
    store = RunStore(tmp_path)
    result = make_result()
    path = store.run_dir("aaaaaaaaaaaa") / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(result))
    assert store.load("aaaaaaaaaaaa") is None
    assert "does not match its folder" in store.problems()[0][1]
    stray = tmp_path / "runs" / ".odd name" / "result.json"
    stray.parent.mkdir()
    stray.write_text(json.dumps(result))
    assert (stray, "'.odd name' is not a run id") in store.problems()


def test_nan_inf_and_numpy_values_are_stored_as_plain_json(tmp_path):
    store = RunStore(tmp_path)
    result = make_result(top1=float("nan"))
    result["metrics"].update(sparsity=np.float32(0.5), params=np.int64(7), train_time_s=float("inf"),
                             neuron_sparsity=np.float64("nan"))
    result["layer_sparsity"] = {"a": np.array([0.25])[0], "b": np.array([1, 2])}
    result["history"][0]["flag"] = np.bool_(True)
    text = store.save(result).read_text()
    assert "NaN" not in text and "Infinity" not in text
    metrics = json.loads(text)["metrics"]  # read raw: a complete run without top1 is not trusted
    assert metrics["top1"] is None and metrics["train_time_s"] is None and metrics["neuron_sparsity"] is None
    assert metrics["sparsity"] == 0.5 and type(metrics["sparsity"]) is float
    assert metrics["params"] == 7 and type(metrics["params"]) is int
    assert store.load(result["run_id"]) is None
    loaded = json.loads(text)
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
    assert store.problems() == []


def test_iter_results_sorted_and_ignores_folders_without_result(tmp_path):
    store = RunStore(tmp_path)
    ids = [store.save(make_result(seed=seed)).parent.name for seed in (2, 0, 1)]
    (tmp_path / "runs" / "dddddddddddd").mkdir()  # e.g. only a checkpoint or a lock so far
    assert [r["run_id"] for r in store.iter_results()] == sorted(ids)
    assert store.problems() == []


def test_frame_columns_and_rows(tmp_path):
    store = RunStore(tmp_path)
    store.save(make_result(seed=0, top1=0.88, hparams={"scope": "global", "start_frac": 0.1}))
    store.save(make_result(seed=1, top1=0.5))
    store.save(make_result(seed=2, status="failed", reason="diverged"))
    frame = store.frame().sort_values("seed").reset_index(drop=True)
    assert len(frame) == 3
    assert list(frame.columns[:6]) == CORE_COLUMNS + ["failure_reason"]
    for column in ["dataset", "model", "method", "target_sparsity", "seed", "lr", "method_hparams",
                   "top1", "sparsity", "params_nonzero", "macs_sparse", "device", "spec_epochs", "epochs",
                   "spec_device", "threads"]:
        assert column in frame.columns, column
    first = frame.iloc[0]
    assert json.loads(first["method_hparams"]) == {"scope": "global", "start_frac": 0.1}
    assert first["spec_epochs"] == 3 and first["epochs"] == 3
    assert first["device"] == "cpu" and first["spec_device"] == "auto"
    assert list(frame["seed"]) == [0, 1, 2]
    assert pd.api.types.is_float_dtype(frame["top1"])
    assert frame["top1"].iloc[0] == 0.88 and frame["top1"].iloc[1] == 0.5
    assert pd.isna(first["failure_reason"])
    failed = frame.iloc[2]
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: boom"
    assert failed["failure_reason"] == "diverged"
    assert math.isnan(failed["top1"]) and pd.isna(failed["device"])


def test_frame_filters_by_run_ids(tmp_path):
    store = RunStore(tmp_path)
    ids = [store.save(make_result(seed=i)).parent.name for i in range(3)]
    frame = store.frame([ids[2], ids[0], "ffffffffffff"])
    assert sorted(frame["run_id"]) == sorted([ids[0], ids[2]])
    assert store.frame([]).empty


def test_empty_store_gives_empty_frame_with_core_columns(tmp_path):
    frame = RunStore(tmp_path / "nothing_here").frame()
    assert frame.empty
    assert list(frame.columns[:5]) == CORE_COLUMNS
    assert {"top1", "sparsity", "target_sparsity", "device"} <= set(frame.columns)
    assert list(RunStore(tmp_path).iter_results()) == []
    assert RunStore(tmp_path).problems() == []
