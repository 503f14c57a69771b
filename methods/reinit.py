"""A fresh random initialisation of an existing model, drawn exactly as the model factory draws it.

``torch.manual_seed(seed); get_model(...)`` builds the modules (each draws its default
initialisation, in construction order) and then applies :func:`models.registry.init_weights`.
:func:`reinitialise` replays that on a model it did not build and whose name it does not know:
``reset_parameters()`` of every module in module order, then ``init_weights``, on a CPU copy (the
factory initialises on the CPU, so the draw is the same on every device) and under
``torch.random.fork_rng``, so the global RNG stream is left as it was.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from models.registry import init_weights


@torch.no_grad()
def reinitialise(model: nn.Module, seed: int) -> None:
    """Overwrite ``model``'s parameters and buffers with the factory's initialisation under ``seed``."""
    fresh = copy.deepcopy(model).to("cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in fresh.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
        init_weights(fresh)
    model.load_state_dict(fresh.state_dict())
