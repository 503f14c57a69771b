"""Where runs execute: in this process, in local worker processes, or on a Ray cluster.

Every executor returns result dicts to the driver, and only the driver writes them to the store
(and, later, the leaderboard), so workers need no shared file system for results. A run that
raises becomes a ``failed`` result with its error, and the grid goes on.

Small models cannot fill a modern GPU, so several runs may share one: ``local`` spreads its
workers over the visible GPUs round-robin (more workers than GPUs packs them), and ``ray`` asks
for a fractional GPU per run (``gpus_per_run=0.25`` packs four runs on a GPU).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm import tqdm

import methods
from benchmark import calibration
from benchmark.spec import RunSpec
from benchmark.store import RunStore

EXECUTORS = ("inline", "local", "ray")


@dataclass
class GridSummary:
    planned: int
    skipped: int
    completed: int
    failed: int


def failed_result(spec: RunSpec, error: BaseException) -> dict[str, Any]:
    """A result recording that ``spec`` raised ``error``."""
    try:
        label = methods.method_label(spec.method, methods.make_hparams(spec.method, **spec.method_hparams))
    except ValueError:  # the failure may be exactly a bad method or hyperparameter
        label = spec.method
    message = f"{type(error).__name__}: {error}".splitlines()[0]
    return {"run_id": spec.run_id, "cell_id": spec.cell_id, "status": "failed", "error": message,
            "traceback": "".join(traceback.format_exception(error)), "label": label,
            "spec": spec.to_dict(), "metrics": {}, "history": []}


def safe_run(spec: RunSpec, progress: Callable[[int, int], None] | None = None,
             workdir: str | None = None) -> dict[str, Any]:
    """``train.run`` that turns an exception into a failed result (Ctrl-C still stops the grid)."""
    try:
        return calibration.run(spec, progress=progress, workdir=Path(workdir) if workdir else None)
    except Exception as error:  # noqa: BLE001 - any failure of one run must not stop the grid
        return failed_result(spec, error)


def execute(specs: Sequence[RunSpec], store: RunStore, executor: str = "inline", workers: int = 1,
            gpus_per_run: float = 1.0, cpus_per_run: float = 1.0, force: bool = False,
            show_progress: bool = True) -> GridSummary:
    """Run every spec whose result is not complete yet (all of them with ``force``)."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose from: {', '.join(EXECUTORS)}")
    pending = [s for s in specs if force or not store.is_complete(s.run_id)]
    summary = GridSummary(planned=len(specs), skipped=len(specs) - len(pending), completed=0, failed=0)
    if not pending:
        return summary
    bar = tqdm(total=len(pending), desc="grid", unit="run", disable=not show_progress, dynamic_ncols=True)

    def record(result: dict[str, Any]) -> None:
        store.save(result)
        if result["status"] == "complete":
            summary.completed += 1
        else:
            summary.failed += 1
            bar.write(f"run {result['run_id']} ({RunSpec.from_dict(result['spec']).describe()}) "
                      f"failed: {result['error']}")
        bar.update(1)

    try:
        if executor == "inline":
            _run_inline(pending, store, bar, record)
        elif executor == "local":
            _run_local(pending, store, workers, bar, record)
        else:
            _run_ray(pending, store, gpus_per_run, cpus_per_run, bar, record)
    finally:
        bar.close()
    return summary


def _run_inline(pending, store, bar, record) -> None:
    for spec in pending:
        name = spec.describe()
        bar.set_postfix_str(name)

        def progress(epoch: int, total: int, name: str = name) -> None:
            bar.set_postfix_str(f"{name} epoch {epoch}/{total}")
        record(safe_run(spec, progress=progress, workdir=str(store.run_dir(spec.run_id))))


# local worker processes --------------------------------------------------------------------
def _init_worker(slots, threads: int) -> None:
    """Pin this worker to one GPU (round-robin slot) before CUDA starts, and size its threads."""
    gpu = slots.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    import torch
    torch.set_num_threads(threads)


def _run_local(pending, store, workers: int, bar, record) -> None:
    import torch
    workers = max(1, min(workers, len(pending)))
    ctx = mp.get_context("spawn")
    slots = ctx.Manager().Queue()
    n_gpus = torch.cuda.device_count()
    for i in range(workers):
        slots.put(i % n_gpus if n_gpus else None)
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(slots, threads)) as pool:
        futures = {pool.submit(safe_run, spec, None, str(store.run_dir(spec.run_id))): spec
                   for spec in pending}
        while futures:
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                spec = futures.pop(future)
                try:
                    result = future.result()
                except Exception as error:  # the worker process itself died
                    result = failed_result(spec, error)
                bar.set_postfix_str(spec.describe())
                record(result)


# ray --------------------------------------------------------------------------------------
def _ray_task(spec_dict: dict[str, Any], workdir: str) -> dict[str, Any]:
    return safe_run(RunSpec.from_dict(spec_dict), workdir=workdir)


def _run_ray(pending, store, gpus_per_run: float, cpus_per_run: float, bar, record) -> None:
    try:
        import ray
    except ImportError:
        raise RuntimeError("the ray executor needs Ray: pip install 'prunebench[ray]'") from None
    ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True, log_to_driver=False)
    has_gpu = ray.cluster_resources().get("GPU", 0) > 0
    task = ray.remote(num_gpus=gpus_per_run if has_gpu else 0, num_cpus=cpus_per_run)(_ray_task)
    refs = {task.remote(spec.to_dict(), str(store.run_dir(spec.run_id))): spec for spec in pending}
    while refs:
        done, _ = ray.wait(list(refs), num_returns=1)
        spec = refs.pop(done[0])
        try:
            result = ray.get(done[0])
        except Exception as error:  # the task's worker died
            result = failed_result(spec, error)
        bar.set_postfix_str(spec.describe())
        record(result)
