"""The store detects edited results: each result.json carries a checksum of its content (issue 15, item 7)."""
from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from benchmark.report.__main__ import main as report_main
from benchmark.store.run_store import RunStore
from benchmark.store.schema import SCHEMA_VERSION, build_result, checksum_of, problem, with_checksum
from helpers import make_result, make_spec


def edit_top1(store: RunStore, run_id: str, top1: float) -> None:
    """Change a stored result's top-1 the way a person would: in the file, checksum untouched."""
    path = store.run_dir(run_id) / "result.json"
    data = json.loads(path.read_text())
    data["metrics"]["top1"] = top1
    path.write_text(json.dumps(data, indent=2))


def test_a_saved_result_carries_the_checksum_of_its_canonical_json(tmp_path):
    store = RunStore(tmp_path)
    path = store.save(make_result())
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION == 4
    content = {k: v for k, v in data.items() if k != "checksum"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    assert data["checksum"] == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    assert store.load(data["run_id"]) == data and store.problems() == []


def test_an_unedited_file_round_trips_and_key_order_or_indentation_do_not_matter(tmp_path):
    store = RunStore(tmp_path)
    result = make_result(top1=0.875)
    path = store.save(result)
    data = json.loads(path.read_text())
    path.write_text(json.dumps(dict(reversed(list(data.items())))))   # rewritten, content unchanged
    assert store.load(result["run_id"]) == result


def test_an_edited_top1_is_reported_and_not_loaded(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.save(make_result(top1=0.8)).parent.name
    edit_top1(store, run_id, 0.999)
    assert store.load(run_id) is None and not store.is_complete(run_id)
    assert store.problems() == [(store.run_dir(run_id) / "result.json",
                                 "its checksum does not match its content (edited?)")]
    assert store.frame().empty


def test_the_checksum_covers_every_field_and_save_reseals():
    result = make_result()
    assert problem(result, result["run_id"]) is None
    for key, value in [("finished_at", "2027-01-01T00:00:00Z"), ("label", "other"), ("error", "x")]:
        assert "checksum does not match" in problem({**result, key: value}, result["run_id"])
    assert problem(with_checksum({**result, "label": "other"}), result["run_id"]) is None
    assert checksum_of(result) == checksum_of({**result, "checksum": "sha256:whatever"})


def test_build_result_seals_what_it_builds():
    spec = make_spec()
    built = build_result(spec, "failed", "gmp", {}, [], error="RuntimeError: x")
    assert built["checksum"] == checksum_of(built) and problem(built, spec.run_id) is None
    assert problem({**built, "checksum": None}, spec.run_id).startswith("no checksum")


def test_report_cli_skips_the_edited_result_with_a_warning(tmp_path, capsys):
    store = RunStore(tmp_path / "results")
    for seed, top1 in enumerate([0.80, 0.82, 0.84]):
        store.save(make_result("gmp", 0.9, seed, top1))
        store.save(make_result("dense", 0.0, seed, 0.9))
    edited = make_result("gmp", 0.9, 0, 0.80)["run_id"]
    edit_top1(store, edited, 0.999)
    assert report_main([str(store.root), "--no-plots"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: skipped {store.run_dir(edited) / 'result.json'}: "
                        "its checksum does not match its content (edited?)"]
    assert "skipped 1 result file(s)" in err
    board = pd.read_csv(store.root / "leaderboard.csv").set_index("method")
    assert board.loc["gmp", "n_seeds"] == 2
    assert board.loc["gmp", "top1"] == pytest.approx(0.83)   # seeds 1 and 2 only: 0.999 never counts
