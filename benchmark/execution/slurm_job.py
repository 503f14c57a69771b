"""A run as a SLURM job that survives preemption, through submitit's checkpointing protocol.

When SLURM preempts a job or its time runs out, it signals the job (SIGUSR2 by default);
submitit then asks the job's callable for its ``checkpoint()`` — here the same run again — and
requeues the job (a timed-out job is requeued only when its callable is checkpointable, as this
one is; a preempted one either way). The requeued run resumes from the checkpoint it wrote in
its own folder (``--checkpoint-every N``; without checkpoints it starts over), so a preempted
grid loses at most N epochs per run. submitit is an optional package: this module is imported
only by the ``submitit`` executor.
"""
from __future__ import annotations

from typing import Any

import submitit

from benchmark.execution.runs import remote_run


class PreemptibleRun(submitit.helpers.Checkpointable):
    """``remote_run`` as a checkpointable job: requeued with the same run when preempted or timed out."""

    def __call__(self, spec_dict: dict[str, Any], workdir: str) -> dict[str, Any]:
        return remote_run(spec_dict, workdir)
