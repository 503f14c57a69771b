"""Interrupt a run after epoch 2, resume it from its checkpoint, and compare with a straight run."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.engine import train
from benchmark.spec import RunSpec


def _stop_after_two(epoch: int, total: int) -> None:
    if epoch == 2:
        raise KeyboardInterrupt


def resumed_and_straight(spec: RunSpec, workdir: Path) -> tuple[dict, dict]:
    """The spec (``checkpoint_every=1``) run interrupted then resumed, and run straight through.

    Asserts what every resumable method owes: the same final top-1 and the same per-epoch losses.
    """
    with pytest.raises(KeyboardInterrupt):
        train.run(spec, progress=_stop_after_two, workdir=workdir)
    resumed, straight = train.run(spec, workdir=workdir), train.run(spec)
    assert resumed["metrics"]["top1"] == straight["metrics"]["top1"]
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in straight["history"]]
    return resumed, straight
