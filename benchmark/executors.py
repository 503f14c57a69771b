"""Where runs execute: in this process, in local worker processes, or on a Ray cluster.

Every executor returns result dicts to the driver, and only the driver writes them to the store
(and, later, the leaderboard), so workers need no shared file system for results. A run that
raises becomes a ``failed`` result with its reason (``diverged``, ``cuda_oom``, ``worker_died``
or ``error``), its message and traceback, and the grid goes on.

Before a run is dispatched the driver claims it with a lock in its folder (:mod:`benchmark.locks`),
so several runners on one results folder share the work: a run another live runner holds is
deferred, and once only such runs are left the driver waits for them and takes their results
(or takes a run over when its runner died). Small models cannot fill a modern GPU, so several runs
may share one: ``local`` spreads its workers over the visible GPUs round-robin (more workers than
GPUs packs them), and ``ray`` asks for a fractional GPU per run (``gpus_per_run=0.25`` packs four
runs on a GPU).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm import tqdm

import methods
from benchmark import calibration, locks, train
from benchmark.schema import SCHEMA_VERSION
from benchmark.spec import RunSpec
from benchmark.store import RunStore, utc_now

EXECUTORS = ("inline", "local", "ray")
#: Seconds between looks at runs that another runner holds.
WAIT_POLL_S = 2.0


@dataclass
class GridSummary:
    planned: int
    skipped: int
    completed: int
    failed: int
    #: one dict per failed run: run_id, run (description), reason, error
    failures: list[dict[str, Any]] = field(default_factory=list)


# results ------------------------------------------------------------------------------------
def failure_reason(error: BaseException) -> tuple[str, dict[str, Any]]:
    """(reason, details) of a run's exception: diverged, cuda_oom, worker_died or error."""
    import torch
    if isinstance(error, train.Diverged):
        return "diverged", {"epoch": error.epoch, "step": error.step}
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return "cuda_oom", {}
    if type(error).__name__ in ("BrokenProcessPool", "WorkerCrashedError", "RayTaskError", "NodeDiedError"):
        return "worker_died", {}
    return "error", {}


def failed_result(spec: RunSpec, error: BaseException) -> dict[str, Any]:
    """A result recording that ``spec`` raised ``error`` (a valid, schema-checked result)."""
    try:
        label = methods.method_label(spec.method, methods.make_hparams(spec.method, **spec.method_hparams))
    except ValueError:  # the failure may be exactly a bad method or hyperparameter
        label = spec.method
    reason, details = failure_reason(error)
    text = str(error).splitlines()[0] if str(error) else ""
    message = f"{reason}: {text}" if reason in ("diverged", "cuda_oom") else f"{type(error).__name__}: {text}"
    if reason == "worker_died":
        message = f"worker_died: {message}"
    return {"schema_version": SCHEMA_VERSION, "run_id": spec.run_id, "cell_id": spec.cell_id,
            "status": "failed", "error": message, "failure": {"reason": reason, **details},
            "traceback": "".join(traceback.format_exception(error)), "label": label,
            "spec": spec.to_dict(), "metrics": {}, "history": [], "finished_at": utc_now()}


def safe_run(spec: RunSpec, progress: Callable[[int, int], None] | None = None,
             workdir: str | None = None) -> dict[str, Any]:
    """``train.run`` that turns an exception into a failed result (Ctrl-C still stops the grid)."""
    try:
        return calibration.run(spec, progress=progress, workdir=Path(workdir) if workdir else None)
    except Exception as error:  # noqa: BLE001 - any failure of one run must not stop the grid
        return failed_result(spec, error)


# the driver ---------------------------------------------------------------------------------
def execute(specs: Sequence[RunSpec], store: RunStore, executor: str = "inline", workers: int = 1,
            gpus_per_run: float = 1.0, cpus_per_run: float = 1.0, force: bool = False,
            show_progress: bool = True) -> GridSummary:
    """Run every spec whose result is not complete yet (all of them with ``force``).

    Each run is claimed with a lock before it is dispatched and released once its result is
    stored; a run held by another live runner is computed by that runner, and this driver waits
    for its result at the end instead of computing it again.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose from: {', '.join(EXECUTORS)}")
    pending = [s for s in specs if force or not store.is_complete(s.run_id)]
    summary = GridSummary(planned=len(specs), skipped=len(specs) - len(pending), completed=0, failed=0)
    if not pending:
        return summary
    bar = tqdm(total=len(pending), desc="grid", unit="run", disable=not show_progress, dynamic_ncols=True)
    if executor == "inline":
        backend: _Backend = _Inline(store, bar)
    elif executor == "local":
        backend = _Local(store, min(workers, len(pending)))
    else:
        backend = _Ray(store, gpus_per_run, cpus_per_run)
    try:
        _drive(pending, store, backend, summary, bar, force)
    finally:
        bar.close()
    return summary


def _drive(pending: list[RunSpec], store: RunStore, backend: "_Backend", summary: GridSummary, bar,
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
                lock = locks.try_lock(store.run_dir(spec.run_id))
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
                store.save(result)
                held.pop(spec.run_id).release()
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
    backend.close()


def _remove_temp_files(run_dir: Path) -> None:
    """Temp files a killed runner left mid-write (we hold the run's lock: nobody else writes here)."""
    for leftover in run_dir.glob(".*.tmp.*"):
        leftover.unlink(missing_ok=True)


class _Backend:
    """Where claimed runs execute; the driver loop above is the same for all of them."""

    def has_capacity(self) -> bool:
        raise NotImplementedError

    def busy(self) -> bool:
        raise NotImplementedError

    def submit(self, spec: RunSpec) -> None:
        raise NotImplementedError

    def next_result(self) -> tuple[RunSpec, dict[str, Any]]:
        raise NotImplementedError

    def abort(self) -> None:
        """Stop everything in flight at once (Ctrl-C)."""

    def close(self) -> None:
        """Release resources after a normal end."""


class _Inline(_Backend):
    """One run at a time in this process."""

    def __init__(self, store: RunStore, bar):
        self.store, self.bar, self.queued = store, bar, None

    def has_capacity(self) -> bool:
        return self.queued is None

    def busy(self) -> bool:
        return self.queued is not None

    def submit(self, spec: RunSpec) -> None:
        self.queued = spec

    def next_result(self) -> tuple[RunSpec, dict[str, Any]]:
        spec, self.queued = self.queued, None
        name = spec.describe()
        self.bar.set_postfix_str(name)

        def progress(epoch: int, total: int) -> None:
            self.bar.set_postfix_str(f"{name} epoch {epoch}/{total}")
        return spec, safe_run(spec, progress=progress, workdir=str(self.store.run_dir(spec.run_id)))


# local worker processes --------------------------------------------------------------------
def _init_worker(slots) -> None:
    """Pin this worker to one GPU (round-robin slot) before CUDA starts; leave Ctrl-C to the driver.

    Workers ignore SIGINT: on Ctrl-C the driver terminates them itself (promptly, with no
    traceback from every worker), releases its locks and exits.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gpu = slots.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)


class _Local(_Backend):
    """``workers`` spawned processes; each run sets its own CPU thread count (``spec.threads``)."""

    def __init__(self, store: RunStore, workers: int):
        import torch
        self.store, self.workers = store, max(1, workers)
        ctx = mp.get_context("spawn")
        slots = ctx.Queue()
        n_gpus = torch.cuda.device_count()
        for i in range(self.workers):
            slots.put(i % n_gpus if n_gpus else None)
        self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
                                        initargs=(slots,))
        self.futures: dict[Any, RunSpec] = {}

    def has_capacity(self) -> bool:
        return len(self.futures) < self.workers

    def busy(self) -> bool:
        return bool(self.futures)

    def submit(self, spec: RunSpec) -> None:
        future = self.pool.submit(safe_run, spec, None, str(self.store.run_dir(spec.run_id)))
        self.futures[future] = spec

    def next_result(self) -> tuple[RunSpec, dict[str, Any]]:
        done, _ = wait(self.futures, return_when=FIRST_COMPLETED)
        future = next(iter(done))
        spec = self.futures.pop(future)
        try:
            return spec, future.result()
        except Exception as error:  # the worker process itself died
            return spec, failed_result(spec, error)

    def abort(self) -> None:
        for process in list(getattr(self.pool, "_processes", {}).values()):
            process.terminate()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


# ray --------------------------------------------------------------------------------------
def _ray_task(spec_dict: dict[str, Any], workdir: str) -> dict[str, Any]:
    return safe_run(RunSpec.from_dict(spec_dict), workdir=workdir)


class _Ray(_Backend):
    """Each claimed run is a Ray task asking for ``gpus_per_run`` GPUs (when the cluster has any)."""

    def __init__(self, store: RunStore, gpus_per_run: float, cpus_per_run: float):
        try:
            import ray
        except ImportError:
            raise RuntimeError("the ray executor needs Ray: pip install 'prunebench[ray]'") from None
        self.ray, self.store = ray, store
        ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True, log_to_driver=False)
        has_gpu = ray.cluster_resources().get("GPU", 0) > 0
        self.task = ray.remote(num_gpus=gpus_per_run if has_gpu else 0, num_cpus=cpus_per_run)(_ray_task)
        self.refs: dict[Any, RunSpec] = {}

    def has_capacity(self) -> bool:
        return True  # Ray queues tasks itself

    def busy(self) -> bool:
        return bool(self.refs)

    def submit(self, spec: RunSpec) -> None:
        self.refs[self.task.remote(spec.to_dict(), str(self.store.run_dir(spec.run_id)))] = spec

    def next_result(self) -> tuple[RunSpec, dict[str, Any]]:
        done, _ = self.ray.wait(list(self.refs), num_returns=1)
        spec = self.refs.pop(done[0])
        try:
            return spec, self.ray.get(done[0])
        except Exception as error:  # the task's worker died
            return spec, failed_result(spec, error)

    def abort(self) -> None:
        for ref in self.refs:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
