"""One run, safely: the engine's run (after calibration), whose failure becomes a stored ``failed`` result.

Shared by every executor backend: a run that raises becomes a result with its reason
(``diverged``, ``cuda_oom``, ``worker_died`` or ``error``), its message and traceback, and the grid
goes on. Ctrl-C (``KeyboardInterrupt``) is not caught: it stops the grid.
"""
from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any, Callable

import methods
from benchmark.engine import calibration
from benchmark.engine.device import Diverged
from benchmark.plugins import load_from_environment
from benchmark.spec import RunSpec
from benchmark.store.schema import build_result

#: Exception class names that mean the process running the run died: the local pool's, a
#: multi-process run's (one of its ranks), Ray's (a crashed or memory-killed worker, a lost node)
#: and submitit's (a job that ended without a result).
#: torch's CUDA ``OutOfMemoryError`` is recognised before these, by its class.
WORKER_DEATHS = ("WorkerDied", "RankDied", "WorkerCrashedError", "NodeDiedError", "OutOfMemoryError",
                 "UncompletedJobError", "FailedJobError")


def failure_reason(error: BaseException) -> tuple[str, dict[str, Any]]:
    """(reason, details) of a run's exception: diverged, cuda_oom, worker_died or error."""
    import torch
    if isinstance(error, Diverged):
        return "diverged", {"epoch": error.epoch, "step": error.step}
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return "cuda_oom", {}
    if type(error).__name__ in WORKER_DEATHS:
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
    return build_result(spec, "failed", label, metrics={}, history=[], error=message,
                        failure={"reason": reason, **details},
                        traceback="".join(traceback.format_exception(error)))


def safe_run(spec: RunSpec, progress: Callable[[int, int], None] | None = None,
             workdir: str | None = None) -> dict[str, Any]:
    """``train.run`` that turns an exception into a failed result (Ctrl-C still stops the grid); the
    driver's plugins are imported first in a worker (:func:`benchmark.plugins.load_from_environment`)."""
    try:
        load_from_environment()
        return calibration.run(spec, progress=progress, workdir=Path(workdir) if workdir else None)
    except Exception as error:  # noqa: BLE001 - any failure of one run must not stop the grid
        return failed_result(spec, error)


def remote_run(spec_dict: dict[str, Any], workdir: str) -> dict[str, Any]:
    """One run on a Ray worker or as a SLURM job: the spec travels as a dict, the data set is
    loaded there (from that machine's disk), and the result dict comes back to the driver."""
    return safe_run(RunSpec.from_dict(spec_dict), workdir=workdir)
