"""The dead-unit probe: a fixed slice of the training set, and the per-epoch ``dead_units`` entry.

The probe is what DemP's death check runs on (Dufort-Labbé et al., arXiv 2403.07688): 3 batches
of 512 training images, un-augmented, in eval mode — or the whole training set when it is
smaller. It is the same slice for every method and seed of a data set (a fixed random subset,
so class order in the stored split cannot bias it). Methods that watch activations get it
through ``set_probe``; the training loop records, after every epoch and for every method, how
many units are dead on it (:func:`methods.activations.probe_dead_units`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from methods.activations import PROBE_BATCH, PROBE_BATCHES, dead_unit_count, probe_dead_units

if TYPE_CHECKING:
    from benchmark.data.containers import Split

PROBE_SIZE = PROBE_BATCH * PROBE_BATCHES
PROBE_SEED = 0


def probe_inputs(split: Split, size: int = PROBE_SIZE) -> Tensor:
    """``size`` fixed training images (all of them when fewer), on the split's device."""
    n = len(split)
    if not hasattr(split, "x"):  # streamed from disk: decode the same fixed subset
        index = torch.randperm(n, generator=torch.Generator().manual_seed(PROBE_SEED))[:size].sort().values
        return split.stack(index.tolist())
    if n <= size:
        return split.x
    index = torch.randperm(n, generator=torch.Generator().manual_seed(PROBE_SEED))[:size].sort().values
    return split.x.index_select(0, index.to(split.x.device))


def dead_units_entry(model: nn.Module, probe: Tensor) -> dict[str, Any]:
    """The history entry: ``{"count": dead units, "rate": dead / all units}`` on the probe."""
    count, total = dead_unit_count(probe_dead_units(model, probe))
    return {"count": count, "rate": count / total if total else float("nan")}
