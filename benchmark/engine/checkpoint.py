"""Checkpoints of an unfinished run: everything a resume needs, written atomically, checked when read.

A checkpoint holds the run id it belongs to; one of another run, or one that cannot be read, is
removed with a warning and the run starts over, so a resume never mixes two runs or trusts a
damaged file. Where it lives: :func:`benchmark.store.layout.checkpoint_file`.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import torch

from benchmark.engine.device import Precision
from benchmark.spec import RunSpec
from benchmark.store.files import atomic_write_bytes


def save_checkpoint(path: Path, spec: RunSpec, epoch: int, train_time: float, history: list, model,
                    optimizer, method, precision: Precision) -> None:
    """Everything a resume needs, written atomically (temp file, fsync, rename)."""
    state = {"run_id": spec.run_id, "epoch": epoch, "train_time": train_time, "history": history,
             "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "method": method.state_dict(),
             "scaler": precision.scaler.state_dict() if precision.scaler else None}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def read_checkpoint(path: Path, spec: RunSpec) -> dict[str, Any] | None:
    """The saved state of this run, or None when there is none to resume from.

    A checkpoint of another run, or one that cannot be read, is removed with a warning and the
    run starts over: a resume never mixes two runs or trusts a damaged file.
    """
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(state, dict) or state.get("run_id") != spec.run_id:
            raise ValueError("it belongs to another run")
        missing = {"epoch", "train_time", "history", "model", "optimizer", "method"} - set(state)
        if missing:
            raise ValueError(f"it lacks {', '.join(sorted(missing))}")
    except Exception as err:  # noqa: BLE001 - any damage means: start this run over
        warnings.warn(f"run {spec.run_id}: ignoring checkpoint {path} ({type(err).__name__}: {err}); "
                      "starting over", stacklevel=2)
        path.unlink(missing_ok=True)
        return None
    return state


def restore(state: dict[str, Any], model, optimizer, method,
            precision: Precision) -> tuple[int, float, list]:
    """Load a checkpoint's states; returns (epochs done, train time so far, history so far)."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    method.load_state_dict(state["method"])
    if precision.scaler and state.get("scaler"):
        precision.scaler.load_state_dict(state["scaler"])
    return state["epoch"], state["train_time"], state["history"]
