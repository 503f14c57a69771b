"""The ``local`` executor's worker processes: one pipe per worker, so a worker's death fails its run only.

A ``concurrent.futures.ProcessPoolExecutor`` cannot do this: when one of its workers dies the
whole pool is marked broken, every run in flight fails with it and no new run can start (one
``kill -9`` ended a grid with a traceback). Here each worker is a spawned process with its own
pipe; the driver waits on the pipes and on the processes' sentinels together, so it knows which
run a dead worker held, records that run as ``worker_died`` and starts a fresh worker in its
place, while the other workers go on.

Workers ignore Ctrl-C and SIGTERM (they start with SIGINT blocked, see :func:`sigint_blocked`):
a terminal or a scheduler signals the whole process group, and the driver then stops its
workers itself (SIGKILL, at once), releases its locks and exits; checkpoints stay for the rerun.
A worker whose driver is gone finds its pipe closed and exits.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
from contextlib import contextmanager
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection, wait
from typing import Any, Iterator

from benchmark.engine.pause_points import pause_point
from benchmark.execution.runs import failed_result, safe_run
from benchmark.spec import RunSpec

#: Seconds a stopped worker gets to exit before it is reported as left running.
JOIN_S = 30.0


class WorkerDied(RuntimeError):
    """The worker process running a run exited before returning its result."""


@contextmanager
def sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread while worker processes start, so they inherit it blocked.

    A terminal's Ctrl-C reaches the whole process group, workers included; a worker still
    importing (before :func:`worker_main` ignores it) would die with a traceback. A Ctrl-C that
    arrives in the window is not lost: the driver gets it once the mask is restored.
    """
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def worker_main(conn: Connection, gpu: int | str | None) -> None:
    """A worker's life: pin its GPU (or its group of GPUs, ``"2,3"``, for multi-process runs), leave
    signals to the driver, run what the pipe brings."""
    pause_point("worker_starting")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the driver is gone
            return
        if task is None:
            return
        spec, workdir = task
        try:
            conn.send(safe_run(spec, workdir=workdir))
        except (BrokenPipeError, OSError):
            return


class Worker:
    """One worker process and the run it holds (None when idle)."""

    def __init__(self, ctx: Any, gpu: int | str | None) -> None:
        self.gpu = gpu
        self.conn, child = ctx.Pipe()
        # Not daemonic: a worker starts the processes of a multi-process run (daemonic processes may
        # have no children). The pool stops its workers itself (stop, close), and a worker whose
        # driver is gone exits when its pipe closes.
        self.process = ctx.Process(target=worker_main, args=(child, gpu), daemon=False,
                                   name="prunebench-worker")
        with sigint_blocked():
            self.process.start()
        child.close()
        self.spec: RunSpec | None = None

    def give(self, spec: RunSpec, workdir: str) -> None:
        self.conn.send((spec, workdir))
        self.spec = spec

    def kill(self) -> None:
        """Stop at once (SIGKILL), wait for the process to be gone, close the pipe."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(JOIN_S)
        self.conn.close()


class WorkerPool:
    """``gpus`` workers (one per entry: its GPU index or group, or None on a CPU), replaced when one dies."""

    def __init__(self, gpus: list[int | str | None]) -> None:
        self.ctx = mp.get_context("spawn")
        # Started with the first process otherwise — and starting it unblocks SIGINT in this
        # process, which would undo sigint_blocked() for that first worker.
        resource_tracker.ensure_running()
        self.workers = [Worker(self.ctx, gpu) for gpu in gpus]

    def idle(self) -> Worker | None:
        return next((w for w in self.workers if w.spec is None), None)

    def busy(self) -> list[Worker]:
        return [w for w in self.workers if w.spec is not None]

    def next_result(self) -> tuple[RunSpec, dict[str, Any]]:
        """Block until a busy worker returns a result or dies; (its run, the result)."""
        busy = self.busy()
        ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
        for worker in busy:
            if worker.conn in ready and worker.conn.poll():
                try:
                    result = worker.conn.recv()
                except (EOFError, OSError):
                    return self._replace(worker)
                spec, worker.spec = worker.spec, None
                return spec, result
        return self._replace(next(w for w in busy if w.process.sentinel in ready or w.conn in ready))

    def _replace(self, dead: Worker) -> tuple[RunSpec, dict[str, Any]]:
        """The failed result of the run ``dead`` held; a fresh worker takes its place."""
        spec = dead.spec
        dead.process.join(JOIN_S)
        error = WorkerDied(f"worker process {dead.process.pid} exited with code {dead.process.exitcode} "
                           "while running it")
        dead.kill()
        self.workers[self.workers.index(dead)] = Worker(self.ctx, dead.gpu)
        return spec, failed_result(spec, error)

    def stop(self) -> None:
        """Kill every worker now (Ctrl-C, SIGTERM, an error in the driver): nothing is left running."""
        for worker in self.workers:
            worker.kill()

    def close(self) -> None:
        """Let idle workers exit after a normal end."""
        for worker in self.workers:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        for worker in self.workers:
            worker.process.join(JOIN_S)
            worker.kill()
