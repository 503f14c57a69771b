"""Entry functions for the processes of a multi-process run in the tests (pickled by name, so they live
in a module of their own): they call the real training loop and report what every rank saw."""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

import methods
from benchmark.engine import train
from benchmark.engine.world import World, fingerprint
from benchmark.spec import RunSpec
from methods.masks import all_prunable_weights


def _state(method: methods.PruningMethod) -> dict[str, Any]:
    """What a rank holds after a step: exact checksums of masks and weights, the zero and mask counts."""
    masks = [method.masks[n] for n in sorted(method.masks)] + [method.param_masks[n]
                                                               for n in sorted(method.param_masks)]
    weights = list(all_prunable_weights(method.model).values())
    params = [p for _, p in sorted(method.model.named_parameters())]
    buffers = [b for _, b in sorted(method.model.named_buffers())]
    return {"masks": fingerprint(masks).tolist(), "params": fingerprint(params).tolist(),
            "buffers": fingerprint(buffers).tolist(),
            "masked": sum(int((m == 0).sum()) for m in method.masks.values()),
            "zeros": sum(int((w == 0).sum()) for w in weights)}


def record_every_step(world: World, report, spec_dict: dict[str, Any]) -> dict[str, Any]:
    """Train ``spec`` with the real loop, recording every rank's state after every optimizer step;
    rank 0 returns every rank's records and the result."""
    spec = RunSpec.from_dict(spec_dict)
    records: list[dict[str, Any]] = []
    get_method = methods.get_method

    def recording(*args, **kwargs):
        method = get_method(*args, **kwargs)
        after_step = method.after_step

        def after_step_recorded(step: int) -> None:
            after_step(step)
            records.append({"step": step, **_state(method)})
        method.after_step = after_step_recorded
        return method

    methods.get_method = recording
    try:
        result = train.run_rank(world, report, spec, None, False)
    finally:
        methods.get_method = get_method
    every_rank: list[Any] = [None] * world.size
    dist.all_gather_object(every_rank, records)
    return {"records": every_rank, "result": result}


def add_ranks(world: World, report, value: float) -> dict[str, Any]:
    """Sum ``value + rank`` over the ranks; rank 0 reports progress twice. Returns what rank 0 saw."""
    total = world.sum_(torch.tensor([value + world.rank]))
    report(1.5, 2)
    report(2, 2)
    return {"sum": float(total), "rank": world.rank, "size": world.size,
            "environment": {k: os.environ.get(k)
                            for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR")}}


def fail_on_rank_one(world: World, report) -> None:
    """Rank 1 raises while rank 0 waits for it in a collective (which would never return)."""
    if world.rank == 1:
        raise ValueError("bad input on rank 1")
    world.sum_(torch.ones(1))


def die_on_rank_one(world: World, report) -> None:
    """Rank 1 exits without a word while rank 0 waits for it in a collective."""
    if world.rank == 1:
        os._exit(3)
    world.sum_(torch.ones(1))
