"""Where claimed runs execute: this process, local worker processes, a Ray cluster, or SLURM.

The driver loop (:mod:`benchmark.execution.executors`) is the same for every backend: it claims a run
(lock), hands it to :meth:`Backend.submit`, and stores what :meth:`Backend.next_result` returns.
Workers only compute and return result dicts; the driver alone writes the store, so workers need
no shared file system for results (checkpoints and calibration caches are written under the
results folder, which a cluster should share). Data sets are loaded by the workers from their own
disk (each worker caches them), never shipped with the task.

- ``inline``: one run at a time in this process.
- ``local``: ``workers`` spawned processes on this machine; with GPUs each worker is pinned to
  one, at most ⌊1/``gpus_per_run``⌋ per GPU (see :func:`assign_gpus`). A worker that dies fails
  its run (``worker_died``) and is replaced; the grid goes on.
- ``ray``: each run is a Ray task asking for ``gpus_per_run`` (fractional) GPUs and
  ``cpus_per_run`` CPUs, on the cluster at ``RAY_ADDRESS`` or a local instance. A task whose
  worker dies is not retried: it is recorded as failed (``worker_died``), and a rerun retries it.
- ``submitit``: the claimed runs are submitted as SLURM job arrays (submitit's local executor
  when no SLURM is found), one job per run.

A run of ``procs_per_run`` N > 1 processes (distributed data parallel) holds N whole GPUs on
every backend: a local worker is pinned to a group of N GPUs (:func:`assign_gpu_groups`), a Ray
task asks for N GPUs, a SLURM job for N GPUs on its node; CPUs are asked for N times. The worker,
task or job starts the run's N processes itself (:mod:`benchmark.engine.launch`).
"""
from __future__ import annotations

import importlib.util
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from benchmark.engine.pause_points import forwarded_environment
from benchmark.plugins import forwarded_environment as plugin_environment
from benchmark.execution.runs import failed_result, remote_run, safe_run
from benchmark.execution.worker_pool import WorkerPool
from benchmark.spec import RunSpec
from benchmark.store.run_store import RunStore

EXECUTORS = ("inline", "local", "ray", "submitit")
#: The optional package an executor needs: (module, its name, the pip extra that installs it).
EXECUTOR_PACKAGES = {"ray": ("ray", "Ray", "prunebench[ray]"),
                     "submitit": ("submitit", "submitit", "prunebench[slurm]")}
#: Seconds between looks at submitted SLURM jobs.
JOB_POLL_S = 1.0


@dataclass(frozen=True)
class Resources:
    """What one run may use: workers (local), GPU share, CPUs, SLURM settings."""
    workers: int = 1
    gpus_per_run: float | None = None
    cpus_per_run: float = 1.0
    slurm_partition: str | None = None
    slurm_timeout_min: int = 720
    #: Processes (and, on GPUs, whole GPUs) each run uses: ``RunSpec.procs_per_run``.
    procs_per_run: int = 1


class Backend:
    """Executes claimed runs; results come back to the driver in completion order."""

    def has_capacity(self) -> bool:
        """True when another run may be submitted now."""
        raise NotImplementedError

    def busy(self) -> bool:
        """True while submitted runs have not been returned yet."""
        raise NotImplementedError

    def submit(self, spec: RunSpec) -> None:
        raise NotImplementedError

    def next_result(self) -> tuple[RunSpec, dict[str, Any]]:
        """Block until a submitted run finishes; (its spec, its result)."""
        raise NotImplementedError

    def abort(self) -> None:
        """Stop everything in flight at once (Ctrl-C)."""

    def close(self) -> None:
        """Release resources after a normal end."""


def make_backend(executor: str, store: RunStore, resources: Resources, progress: Callable) -> Backend:
    """The backend named ``executor``; ``progress(spec, epoch, total)`` is called by ``inline``."""
    if executor == "inline":
        return Inline(store, progress)
    if executor == "local":
        return Local(store, resources)
    if executor == "ray":
        return Ray(store, resources)
    if executor == "submitit":
        return Submitit(store, resources)
    raise ValueError(f"unknown executor {executor!r}; choose from: {', '.join(EXECUTORS)}")


def install_hint(executor: str) -> str:
    """The line that says ``executor``'s package is missing and how to install it."""
    _, name, extra = EXECUTOR_PACKAGES[executor]
    return f"--executor {executor} needs {name}, which is not installed: pip install '{extra}'"


def missing_package(executor: str) -> str | None:
    """:func:`install_hint` when ``executor`` needs a package that is not installed, else None
    (the CLI's check before anything runs; a backend says the same when its import fails)."""
    if executor in EXECUTOR_PACKAGES and importlib.util.find_spec(EXECUTOR_PACKAGES[executor][0]) is None:
        return install_hint(executor)
    return None


def _workdir(store: RunStore, spec: RunSpec) -> str:
    return str(store.run_dir(spec.run_id))


# inline ---------------------------------------------------------------------------------------
class Inline(Backend):
    """One run at a time in this process."""

    def __init__(self, store: RunStore, progress: Callable):
        self.store, self.progress, self.queued = store, progress, None

    def has_capacity(self) -> bool:
        return self.queued is None

    def busy(self) -> bool:
        return self.queued is not None

    def submit(self, spec: RunSpec) -> None:
        self.queued = spec

    def next_result(self) -> tuple[RunSpec, dict[str, Any]]:
        spec, self.queued = self.queued, None
        return spec, safe_run(spec, progress=lambda epoch, total: self.progress(spec, epoch, total),
                              workdir=_workdir(self.store, spec))


# local worker processes -------------------------------------------------------------------------
def assign_gpus(workers: int, n_gpus: int, gpus_per_run: float | None) -> list[int | None]:
    """The GPU of each worker: round-robin, at most ⌊1/``gpus_per_run``⌋ workers per GPU.

    Without GPUs every worker gets None (CPU). ``gpus_per_run=None`` packs as many workers as
    asked (⌈workers/GPUs⌉ per GPU). More workers than fit is a ``ValueError`` (one line).
    """
    if n_gpus == 0:
        return [None] * workers
    if gpus_per_run is not None:
        if not 0 < gpus_per_run <= 1:
            raise ValueError(f"--gpus-per-run must be in (0, 1] for the local executor, got {gpus_per_run:g}")
        per_gpu = math.floor(1 / gpus_per_run + 1e-9)
        if workers > per_gpu * n_gpus:
            raise ValueError(f"--workers {workers} do not fit: {n_gpus} GPU(s) × ⌊1/{gpus_per_run:g}⌋ = "
                             f"{per_gpu * n_gpus} runs at a time")
    return [i % n_gpus for i in range(workers)]


def assign_gpu_groups(workers: int, n_gpus: int, procs: int) -> list[str | None]:
    """The GPUs of each worker whose runs are ``procs`` processes: disjoint groups of ``procs`` GPUs
    (``CUDA_VISIBLE_DEVICES`` values such as ``"2,3"``). Without GPUs every worker gets None (CPU
    processes). More workers than there are groups is a ``ValueError`` (one line)."""
    if n_gpus == 0:
        return [None] * workers
    if workers * procs > n_gpus:
        raise ValueError(f"--workers {workers} × --procs-per-run {procs} GPUs do not fit on this machine's "
                         f"{n_gpus} GPU(s)")
    return [",".join(str(w * procs + i) for i in range(procs)) for w in range(workers)]


def worker_gpus(resources: Resources, n_gpus: int) -> list[int | str | None]:
    """The GPU (``gpus_per_run`` packing, :func:`assign_gpus`) or GPU group (multi-process runs,
    :func:`assign_gpu_groups`) of each local worker; ``ValueError`` (one line) when they do not fit."""
    workers = max(1, resources.workers)
    if resources.procs_per_run > 1:
        return assign_gpu_groups(workers, n_gpus, resources.procs_per_run)
    return assign_gpus(workers, n_gpus, resources.gpus_per_run)


class Local(Backend):
    """``workers`` spawned processes (:mod:`benchmark.execution.worker_pool`); each run sets its own
    CPU thread count (``spec.threads``). A worker that dies fails its own run only."""

    def __init__(self, store: RunStore, resources: Resources):
        import torch
        self.store = store
        self.pool = WorkerPool(worker_gpus(resources, torch.cuda.device_count()))

    def has_capacity(self) -> bool:
        return self.pool.idle() is not None

    def busy(self) -> bool:
        return bool(self.pool.busy())

    def submit(self, spec: RunSpec) -> None:
        self.pool.idle().give(spec, _workdir(self.store, spec))

    def next_result(self) -> tuple[RunSpec, dict[str, Any]]:
        return self.pool.next_result()

    def abort(self) -> None:
        self.pool.stop()

    def close(self) -> None:
        self.pool.close()


# ray ------------------------------------------------------------------------------------------
class Ray(Backend):
    """Each claimed run is a Ray task asking for ``gpus_per_run`` GPUs (when the cluster has any)."""

    def __init__(self, store: RunStore, resources: Resources):
        try:
            import ray
        except ImportError:
            raise RuntimeError(install_hint("ray")) from None
        self.ray, self.store = ray, store
        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False)
        has_gpu = ray.cluster_resources().get("GPU", 0) > 0
        gpus = (resources.gpus_per_run if resources.gpus_per_run is not None else 1.0) if has_gpu else 0
        if resources.procs_per_run > 1 and has_gpu:
            gpus = resources.procs_per_run  # one whole GPU per process of the run
        options: dict[str, Any] = {"num_gpus": gpus, "max_retries": 0,
                                   "num_cpus": resources.cpus_per_run * resources.procs_per_run}
        forwarded = {**forwarded_environment(), **plugin_environment()}
        if forwarded:  # plugins and a test's pause points reach the task's worker process
            options["runtime_env"] = {"env_vars": forwarded}
        self.task = ray.remote(**options)(remote_run)
        self.refs: dict[Any, RunSpec] = {}

    def has_capacity(self) -> bool:
        return True  # Ray queues tasks itself

    def busy(self) -> bool:
        return bool(self.refs)

    def submit(self, spec: RunSpec) -> None:
        self.refs[self.task.remote(spec.to_dict(), _workdir(self.store, spec))] = spec

    def next_result(self) -> tuple[RunSpec, dict[str, Any]]:
        done, _ = self.ray.wait(list(self.refs), num_returns=1)
        spec = self.refs.pop(done[0])
        try:
            return spec, self.ray.get(done[0])
        except Exception as error:  # the task's worker died (or its node)
            return spec, failed_result(spec, error)

    def abort(self) -> None:
        for ref in self.refs:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass


# SLURM via submitit ---------------------------------------------------------------------------
class Submitit(Backend):
    """Claimed runs go out as job arrays: one array per batch the driver submits, one job per run.

    Jobs write their logs and pickled results under ``<results>/submitit``; the driver reads the
    results and writes the store. SLURM is used when submitit finds it, else its local executor.
    """

    def __init__(self, store: RunStore, resources: Resources):
        try:
            import submitit
        except ImportError:
            raise RuntimeError(install_hint("submitit")) from None
        from benchmark.execution.slurm_job import PreemptibleRun  # submitit is optional
        self.job = PreemptibleRun
        self.store = store
        self.executor = submitit.AutoExecutor(folder=store.root / "submitit" / "%j")
        gpus = math.ceil(resources.gpus_per_run) if resources.gpus_per_run else 0
        if resources.procs_per_run > 1 and gpus:
            gpus = resources.procs_per_run  # one whole GPU per process of the run
        cpus = max(1, math.ceil(resources.cpus_per_run * resources.procs_per_run))
        params: dict[str, Any] = {"timeout_min": resources.slurm_timeout_min, "cpus_per_task": cpus,
                                  "gpus_per_node": gpus, "name": "prunebench"}
        if resources.slurm_partition:
            params["slurm_partition"] = resources.slurm_partition
        self.executor.update_parameters(**params)
        self.pending: list[RunSpec] = []
        self.jobs: list[tuple[Any, RunSpec]] = []

    def has_capacity(self) -> bool:
        return True  # the scheduler queues jobs itself

    def busy(self) -> bool:
        self._flush()
        return bool(self.jobs)

    def submit(self, spec: RunSpec) -> None:
        self.pending.append(spec)

    def _flush(self) -> None:
        """Submit the runs claimed since the last flush as one job array."""
        if not self.pending:
            return
        specs, self.pending = self.pending, []
        jobs = self.executor.map_array(self.job(), [s.to_dict() for s in specs],
                                       [_workdir(self.store, s) for s in specs])
        self.jobs += list(zip(jobs, specs))

    def next_result(self) -> tuple[RunSpec, dict[str, Any]]:
        self._flush()
        while True:
            for i, (job, spec) in enumerate(self.jobs):
                if job.done():
                    del self.jobs[i]
                    try:
                        return spec, job.result()
                    except Exception as error:  # the job died without a result
                        return spec, failed_result(spec, error)
            time.sleep(JOB_POLL_S)

    def abort(self) -> None:
        for job, _ in self.jobs:
            try:
                job.cancel(check=False)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
