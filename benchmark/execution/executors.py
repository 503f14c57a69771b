"""The grid driver: claim each run with a lock, execute it on a backend, store its result.

Backends (:mod:`benchmark.execution.backends`) say *where* runs execute: in this process, in local worker
processes, on a Ray cluster or on SLURM. Every backend returns result dicts to the driver, and
only the driver writes them to the store (and, later, the leaderboard). A run that raises
becomes a ``failed`` result with its reason (:mod:`benchmark.execution.runs`), and the grid goes on.

Before a run is dispatched the driver claims it with a lock in its folder (:mod:`benchmark.execution.locks`),
so several runners on one results folder share the work: a run another live runner holds is
deferred, and once only such runs are left the driver waits for them and takes their results
(or takes a run over when its runner died).
"""
from __future__ import annotations

import dataclasses
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from benchmark.engine import calibration
from benchmark.execution import locks
from benchmark.execution.backends import EXECUTORS, Backend, Resources, make_backend
from benchmark.execution.runs import failed_result
from benchmark.spec import RunSpec
from benchmark.store.run_store import RunStore

__all__ = ["GridSummary", "execute"]

#: Seconds between looks at runs that another runner holds.
WAIT_POLL_S = 2.0


class StoreWriteError(RuntimeError):
    """A result could not be written (no space, quota, permission, read-only file system): the grid
    stops, as every later result would meet the same disk. The message is one line."""


@dataclass
class GridSummary:
    planned: int
    skipped: int
    completed: int
    failed: int
    #: one dict per failed run: run_id, run (description), reason, error
    failures: list[dict[str, Any]] = field(default_factory=list)


# the driver ---------------------------------------------------------------------------------
def execute(specs: Sequence[RunSpec], store: RunStore, executor: str = "inline", workers: int = 1,
            gpus_per_run: float | None = None, cpus_per_run: float = 1.0, force: bool = False,
            show_progress: bool = True, resources: Resources | None = None) -> GridSummary:
    """Run every spec whose result is not complete yet (all of them with ``force``).

    Each run is claimed with a lock before it is dispatched and released once its result is
    stored; a run held by another live runner is computed by that runner, and this driver waits
    for its result at the end instead of computing it again. ``resources`` (or ``workers``,
    ``gpus_per_run``, ``cpus_per_run``) say what one run may use on the backend. Runs that start
    a calibration search go first (:func:`benchmark.engine.calibration.searches_first`).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose from: {', '.join(EXECUTORS)}")
    resources = resources or Resources(workers=workers, gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run)
    pending = calibration.searches_first([s for s in specs if force or not store.is_complete(s.run_id)])
    summary = GridSummary(planned=len(specs), skipped=len(specs) - len(pending), completed=0, failed=0)
    if not pending:
        return summary
    bar = tqdm(total=len(pending), desc="grid", unit="run", disable=not show_progress, dynamic_ncols=True)

    def progress(spec: RunSpec, epoch: float, total: int) -> None:
        """The run's place in its training: ``epoch 3/100``, or ``epoch 3.42/100`` inside a long epoch."""
        done = f"{epoch:g}" if float(epoch).is_integer() else f"{epoch:.2f}"
        bar.set_postfix_str(f"{spec.describe()} epoch {done}/{total}")

    if executor == "local":
        resources = dataclasses.replace(resources, workers=min(resources.workers, len(pending)))
    backend = make_backend(executor, store, resources, progress)
    try:
        _drive(pending, store, backend, summary, bar, force)
    finally:
        bar.close()
    return summary


def _drive(pending: list[RunSpec], store: RunStore, backend: Backend, summary: GridSummary, bar,
           force: bool) -> None:
    """Claim, dispatch and record every pending run; wait for runs other runners hold."""
    before = {s.run_id: (store.load(s.run_id) or {}).get("finished_at") for s in pending}
    todo: deque[RunSpec] = deque(pending)
    waiting: list[RunSpec] = []
    announced: set[str] = set()
    held: dict[str, locks.RunLock] = {}

    def count(result: dict[str, Any]) -> None:
        if result["status"] == "complete":
            summary.completed += 1
        else:
            summary.failed += 1
            description = RunSpec.from_dict(result["spec"]).describe()
            summary.failures.append({"run_id": result["run_id"], "run": description,
                                     "reason": (result.get("failure") or {}).get("reason", "error"),
                                     "error": result["error"]})
            bar.write(f"run {result['run_id']} ({description}) failed: {result['error']}")
        bar.update(1)

    def take_if_finished_elsewhere(spec: RunSpec) -> bool:
        """Count the result another runner stored for ``spec`` while this driver ran, if any."""
        result = None if force else store.load(spec.run_id)
        if result is None or result.get("finished_at") == before[spec.run_id]:
            return False
        if result["status"] == "complete":
            summary.skipped += 1
            bar.update(1)
        else:
            count(result)
        return True

    try:
        while todo or waiting or backend.busy():
            while todo and backend.has_capacity():
                spec = todo.popleft()
                if take_if_finished_elsewhere(spec):
                    continue
                lock = locks.try_lock(store.claim_folder(spec.run_id))  # a real folder inside --out
                if lock is None:
                    if spec.run_id not in announced:
                        announced.add(spec.run_id)
                        bar.write(f"run {spec.run_id} ({spec.describe()}) is being computed by "
                                  f"{locks.describe_owner(store.run_dir(spec.run_id))}; waiting for it")
                    waiting.append(spec)
                    continue
                if take_if_finished_elsewhere(spec):  # finished between our look and our lock
                    lock.release()
                    continue
                held[spec.run_id] = lock
                _remove_temp_files(store.run_dir(spec.run_id))
                backend.submit(spec)
            if backend.busy():
                spec, result = backend.next_result()
                _store(store, spec, result)
                held.pop(spec.run_id).release()
                bar.set_postfix_str(spec.describe())
                count(result)
            elif waiting:
                time.sleep(WAIT_POLL_S)
                todo.extend(waiting)
                waiting.clear()
    except BaseException:
        backend.abort()
        raise
    finally:
        for lock in held.values():
            lock.release()
            _remove_if_empty(lock.path.parent)  # a run that never got a result leaves no trace
    backend.close()


def _store(store: RunStore, spec: RunSpec, result: dict[str, Any]) -> None:
    """Save ``result``; when the disk refuses, record the run as failed if it still can, and stop."""
    try:
        store.save(result)
        return
    except OSError as error:
        cause = f"cannot write {store.layout.result_file(spec.run_id)}: {error.strerror or error}"
    try:  # a failed result is small: it may still fit, and then a rerun knows to retry this run
        store.save(failed_result(spec, OSError(cause)))
    except OSError:
        pass
    raise StoreWriteError(f"{cause}; the grid stopped (the runs stored before are kept: "
                          "free space and rerun)")


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty (a checkpoint to resume from, a result), or already gone
        pass


def _remove_temp_files(run_dir: Path) -> None:
    """Temp files a killed runner left mid-write (we hold the run's lock: nobody else writes here)."""
    for leftover in run_dir.glob(".*.tmp.*"):
        leftover.unlink(missing_ok=True)
