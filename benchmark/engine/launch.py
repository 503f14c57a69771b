"""Start one run as N processes, the way ``torchrun --standalone --nproc-per-node N`` starts them.

This process plays torchrun's agent: it hosts the rendezvous store (a ``TCPStore`` on a free
local port, so two runs starting at once never race for a port), starts N spawned processes
with torchrun's environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``, ``TORCHELASTIC_USE_AGENT_STORE``), and each of them joins the
process group with ``init_method="env://"`` (NCCL on GPUs, gloo on CPUs) and calls the entry
function with its :class:`~benchmark.engine.world.World`.

Written here rather than with ``torch.distributed.launcher.elastic_launch`` because a run is one
task of a grid, and the grid's guarantees must hold for its processes too: rank 0's progress
reaches the grid's progress bar; the first failing rank's own exception (``Diverged``, a CUDA
out-of-memory error, a bad configuration) is re-raised here with its traceback, so the run is
recorded as failed for the right reason instead of "child failed"; the other ranks are killed at
once instead of waiting in a collective for a peer that is gone; and a rank whose parent dies
(a grid worker killed with ``SIGKILL``) is killed by the kernel (``PR_SET_PDEATHSIG`` on Linux)
instead of training on as an orphan. Elastic restarts are not needed: a run that fails is
retried by the grid (resuming from its checkpoint).
"""
from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import pickle
import signal
import sys
import time
import traceback
from datetime import timedelta
from multiprocessing.connection import Connection, wait
from typing import Any, Callable

from benchmark.engine.world import World

#: Seconds a rank may wait for its peers in a collective before the run fails.
COLLECTIVE_TIMEOUT = timedelta(minutes=30)
#: Seconds the ranks get to exit after rank 0 returned the result.
JOIN_S = 60.0
#: Seconds to wait, once a rank failed only because it lost a peer, for the peer's own failure.
GRACE_S = 10.0
#: Messages of the errors a rank raises when a peer is gone (gloo's and NCCL's wording).
PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe",
             "NCCL communicator was aborted")
_PR_SET_PDEATHSIG = 1


class RankDied(RuntimeError):
    """A process of a multi-process run exited without returning (killed, out of memory)."""


class RemoteTraceback(Exception):
    """The traceback of the rank that failed, attached as the ``__cause__`` of its exception."""

    def __init__(self, text: str):
        super().__init__(text)

    def __str__(self) -> str:
        return "\n" + self.args[0]


ProgressFn = Callable[..., None]
Entry = Callable[..., Any]


def run_processes(entry: Entry, args: tuple, procs: int, backend: str,
                  progress: ProgressFn | None = None) -> Any:
    """``entry(world, report, *args)`` in ``procs`` new processes; returns what rank 0 returned.

    ``entry`` must be a module-level function (it is pickled by name). ``report(*values)`` sends
    values from rank 0 to ``progress`` in this process (a no-op on the other ranks). When a rank
    raises, its exception is re-raised here (with the rank's traceback as its cause) and the other
    ranks are killed; a rank that dies without raising becomes :class:`RankDied`.
    """
    from torch.distributed import TCPStore
    store = TCPStore("127.0.0.1", 0, world_size=procs, is_master=True, wait_for_workers=False,
                     timeout=COLLECTIVE_TIMEOUT)
    ctx = mp.get_context("spawn")
    ranks = []
    for rank in range(procs):
        parent_end, child_end = ctx.Pipe(duplex=False)
        env = {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(procs),
               "LOCAL_WORLD_SIZE": str(procs), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store.port),
               "TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_RESTART_COUNT": "0"}
        process = ctx.Process(target=_rank_main, args=(entry, args, env, backend, child_end, os.getpid()),
                              name=f"prunebench-rank{rank}", daemon=False)
        process.start()
        child_end.close()
        ranks.append((process, parent_end))
    try:
        return _collect(ranks, progress)
    finally:
        for process, conn in ranks:
            if process.is_alive():
                process.kill()
            process.join(JOIN_S)
            conn.close()
        del store


def _collect(ranks: list, progress: ProgressFn | None) -> Any:
    """Wait for the ranks: forward rank 0's progress, return its result, raise the first failure."""
    results: dict[int, Any] = {}
    open_ranks = set(range(len(ranks)))
    failures: list[BaseException] = []
    deadline = None
    while open_ranks:
        waitables = {}
        for rank in open_ranks:
            process, conn = ranks[rank]
            waitables[conn] = rank
            waitables[process.sentinel] = rank
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = wait(list(waitables), timeout=remaining)
        if not ready:  # the grace period is over: report the best failure seen
            break
        for rank in sorted({waitables[r] for r in ready}):
            process, conn = ranks[rank]
            message = _receive(conn)
            if message is None and process.is_alive():
                continue
            if message is None or message[0] == "eof":  # the process ended without a word
                process.join(JOIN_S)
                failures.append(RankDied(f"process {rank} of the run (pid {process.pid}) exited with code "
                                         f"{process.exitcode} without a result"))
                open_ranks.discard(rank)
                continue
            kind, payload = message
            if kind == "progress":
                if progress is not None:
                    progress(*payload)
            elif kind == "result":
                results[rank] = payload
                open_ranks.discard(rank)
            elif kind == "error":
                failures.append(_rebuild(*payload))
                open_ranks.discard(rank)
        if any(_rank_of_failure(f) == 0 for f in failures) or (deadline and time.monotonic() > deadline):
            break
        if failures and deadline is None:
            deadline = time.monotonic() + GRACE_S
    if failures:
        raise min(failures, key=_rank_of_failure)
    return results[0]


def _receive(conn: Connection) -> tuple[str, Any] | None:
    """The next message of a rank, None when there is none yet, ``("eof", None)`` once its pipe closed."""
    try:
        return conn.recv() if conn.poll() else None
    except (EOFError, OSError):
        return ("eof", None)


def _rank_of_failure(error: BaseException) -> int:
    """How surely ``error`` is the cause of a failed run: 0 for a rank's own exception, 1 for a rank
    that died, 2 for a rank that only lost a peer (its peer's failure is the cause: it is waited
    for, :data:`GRACE_S` at most)."""
    import torch.distributed as dist
    if isinstance(error, RankDied):
        return 1
    if isinstance(error, dist.DistError) or any(text in str(error) for text in PEER_GONE):
        return 2
    return 0


def _rebuild(blob: bytes | None, kind: str, text: str, trace: str) -> BaseException:
    """The exception a rank sent: itself when it unpickles, else a RuntimeError naming it."""
    error = None
    if blob is not None:
        try:
            error = pickle.loads(blob)
        except Exception:  # noqa: BLE001 - an exception class that cannot be rebuilt here
            error = None
    if not isinstance(error, BaseException):
        error = RuntimeError(f"{kind}: {text}")
    error.__cause__ = RemoteTraceback(trace)
    return error


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to kill this process when its parent exits (Linux); exit if it already has."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(1)


def _rank_main(entry: Entry, args: tuple, env: dict[str, str], backend: str, conn: Connection,
               parent_pid: int) -> None:
    """One rank: join the process group, run ``entry``, send its result (or its exception) back."""
    _die_with_parent(parent_pid)
    os.environ.update(env)
    import torch.distributed as dist
    world = World(rank=int(env["RANK"]), size=int(env["WORLD_SIZE"]), local_rank=int(env["LOCAL_RANK"]))

    def report(*values: Any) -> None:
        if world.is_main:
            conn.send(("progress", values))

    try:
        if backend == "nccl":  # NCCL binds a rank to the GPU current when the group forms
            import torch
            torch.cuda.set_device(world.local_rank)
        dist.init_process_group(backend, init_method="env://", timeout=COLLECTIVE_TIMEOUT)
        result = entry(world, report, *args)
        conn.send(("result", result if world.is_main else None))
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the launcher
        conn.send(("error", _describe(error)))
        conn.close()
        os._exit(1)  # do not wait in the process group's teardown for peers that may be stuck
    try:
        dist.destroy_process_group()
    finally:
        conn.close()


def _describe(error: BaseException) -> tuple[bytes | None, str, str, str]:
    """(pickled exception if it round-trips, class name, message, formatted traceback)."""
    try:
        blob = pickle.dumps(error)
        pickle.loads(blob)
    except Exception:  # noqa: BLE001 - an exception that cannot travel: send its text
        blob = None
    return blob, type(error).__name__, str(error), "".join(traceback.format_exception(error))
