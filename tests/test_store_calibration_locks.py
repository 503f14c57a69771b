"""Calibration locks under ``<results>/calibration``: removed once their search is done, safely
(issue 15, item 11). A fake ``train_fn`` stands for training: no torch work here."""
from __future__ import annotations

import fcntl
import json
import math
import os
import threading
from pathlib import Path

import pytest

from benchmark.engine import calibration
from benchmark.spec import RunSpec

FAST = dict(dataset="synthetic", model="mlp", epochs=2, batch_size=64, lr=0.1)


def fake_train(spec: RunSpec, progress=None, workdir=None) -> dict:
    """A run whose sparsity is a logistic curve of gRDA's ``c`` (0.5 at c = 0.01): no training."""
    c = spec.method_hparams.get("c", 0.0)
    sparsity = 0.0 if c <= 0 else 1 / (1 + math.exp(-2 * math.log(c / 0.01)))
    return {"run_id": spec.run_id, "label": "grda",
            "metrics": {"sparsity": sparsity, "top1": 0.9, "epochs": spec.epochs}}


def locks_left(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "calibration").glob("*.lock"))


def test_a_finished_search_and_a_cache_hit_leave_no_lock(tmp_path):
    spec = RunSpec(method="grda", target_sparsity=0.7, seed=1, **FAST)
    result = calibration.run(spec, workdir=tmp_path / "runs" / spec.run_id, train_fn=fake_train)
    assert result["calibration"]["cache"] == "miss" and result["calibration"]["within_tolerance"]
    assert locks_left(tmp_path) == []
    (record,) = (tmp_path / "calibration").glob("*.json")
    assert json.loads(record.read_text())["value"] == result["calibration"]["value"]
    other = RunSpec(method="grda", target_sparsity=0.7, seed=2, **FAST)
    again = calibration.run(other, workdir=tmp_path / "runs" / other.run_id, train_fn=fake_train)
    assert again["calibration"]["cache"] == "hit" and locks_left(tmp_path) == []


def test_an_interrupted_search_keeps_its_lock_until_it_is_resumed_and_done(tmp_path):
    spec = RunSpec(method="grda", target_sparsity=0.7, seed=1, **FAST)
    workdir = tmp_path / "runs" / spec.run_id

    def interrupted(spec, progress=None, workdir=None):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        calibration.run(spec, workdir=workdir, train_fn=interrupted)
    assert len(locks_left(tmp_path)) == 1
    calibration.run(spec, workdir=workdir, train_fn=fake_train)
    assert locks_left(tmp_path) == []


def test_a_linked_calibration_folder_is_replaced_and_its_target_untouched(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "calibration").symlink_to(outside, target_is_directory=True)
    spec = RunSpec(method="grda", target_sparsity=0.7, seed=1, **FAST)
    calibration.run(spec, workdir=tmp_path / "results" / "runs" / spec.run_id, train_fn=fake_train)
    assert not (tmp_path / "results" / "calibration").is_symlink()
    assert len(list((tmp_path / "results" / "calibration").glob("*.json"))) == 1
    assert list(outside.iterdir()) == []


def can_lock_now(path: Path) -> bool:
    """Whether the file now at ``path`` could be locked at once (it is created when absent)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_a_waiter_on_a_removed_lock_file_locks_the_new_one(tmp_path, monkeypatch):
    """A holds the lock; B has opened the same file and waits on it; A finishes (removes the file,
    then unlocks). B must not run its search on the removed file while a newcomer could lock a new
    one: B relocks the file on disk, so, inside B, nobody else can take the lock."""
    record = tmp_path / "calibration" / "key.json"
    lock_path = record.with_suffix(".lock")
    holding, go, b_opened = threading.Event(), threading.Event(), threading.Event()
    b_flocks, seen_by_b = [], []
    real_flock = fcntl.flock

    def spying_flock(fd, operation):
        if threading.current_thread().name == "B" and operation == fcntl.LOCK_EX:
            b_flocks.append(os.fstat(fd).st_ino)
            b_opened.set()                       # B has the file open and is about to wait on it
        return real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", spying_flock)

    def a() -> None:
        with calibration.search_lock(record):
            holding.set()
            go.wait(timeout=60)

    def b() -> None:
        if holding.wait(timeout=60):
            with calibration.search_lock(record):
                seen_by_b.append((can_lock_now(lock_path), os.stat(lock_path).st_ino))

    # daemon threads and timeouts on every wait: a broken protocol fails the test, never hangs it
    threads = [threading.Thread(target=a, name="A", daemon=True),
               threading.Thread(target=b, name="B", daemon=True)]
    for thread in threads:
        thread.start()
    opened = b_opened.wait(timeout=60)
    go.set()
    assert opened
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    ((newcomer_could_lock, inode_in_b),) = seen_by_b
    assert not newcomer_could_lock                          # mutual exclusion held inside B
    assert len(b_flocks) == 2 and b_flocks[1] == inode_in_b   # B dropped the removed file, locked the new one
    assert not lock_path.exists()                           # and removed it when done
