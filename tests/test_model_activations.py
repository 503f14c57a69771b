"""The models' activation modules: one distinct, hookable module per nonlinearity (the probes need it)."""
from __future__ import annotations

from typing import Dict

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from model_cases import (ACTIVATION_CLASSES, ACTIVATION_SITES, ALL_ACTIVATION_LIKE, MODELS, activations,
                         one_thread_then_clear_cache, shared, small_shape, width)
from models import ACTIVATION_TYPES


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_thread_then_clear_cache()


# --------------------------------------------------------------------------- activation modules


@pytest.mark.parametrize("name", MODELS)
def test_activation_modules_distinct_and_called_once(name: str) -> None:
    model = shared(name)
    acts = activations(model)
    assert len(acts) == ACTIVATION_SITES[name][0]
    # No module object is registered twice anywhere in the tree.
    every = [m for _, m in model.named_modules(remove_duplicate=False)]
    assert len({id(m) for m in every}) == len(every)
    assert all(not getattr(m, "inplace", False) for m in acts)

    calls = {id(m): 0 for m in acts}
    handles = [m.register_forward_hook(lambda mod, i, o: calls.__setitem__(id(mod), calls[id(mod)] + 1))
               for m in acts]
    with torch.no_grad():
        model(torch.randn(2, *small_shape(name)))
        model(torch.randn(2, *small_shape(name)))
    for h in handles:
        h.remove()
    assert set(calls.values()) == {2}


class _CountActivationCalls(TorchFunctionMode):
    """Counts every relu / leaky_relu / silu call, whether issued by a module or functionally."""

    NAMES = {"relu", "relu_", "leaky_relu", "leaky_relu_", "silu", "silu_"}

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if getattr(func, "__name__", "") in self.NAMES:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("activation", ["relu", "swish"])
@pytest.mark.parametrize("name", MODELS)
def test_no_functional_activations(name: str, activation: str) -> None:
    # Every nonlinearity evaluated in forward belongs to an activation module (hookable).
    model = shared(name, activation)
    x = torch.randn(2, *small_shape(name))
    with torch.no_grad(), _CountActivationCalls() as counter:
        model(x)
    assert counter.count == ACTIVATION_SITES[name][0]


@pytest.mark.parametrize("name", MODELS)
def test_activation_outputs_match_preceding_layer(name: str) -> None:
    model = shared(name)
    expected: Dict[int, int] = {}
    last = None
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            last = module
        elif isinstance(module, ACTIVATION_TYPES):
            assert last is not None, "activation before any prunable layer"
            expected[id(module)] = width(last)
    seen: Dict[int, int] = {}
    handles = [m.register_forward_hook(lambda mod, i, o: seen.__setitem__(id(mod), o.shape[1]))
               for m in activations(model)]
    with torch.no_grad():
        model(torch.randn(2, *small_shape(name)))
    for h in handles:
        h.remove()
    assert seen == expected
    assert sum(seen.values()) == ACTIVATION_SITES[name][1]


@pytest.mark.parametrize("name", MODELS)
def test_activation_choice_changes_modules(name: str) -> None:
    shape = small_shape(name)
    x = torch.randn(2, *shape)
    outputs = {}
    for act, cls in ACTIVATION_CLASSES.items():
        model = shared(name, act).train()  # batch statistics: output depends only on weights and x
        found = [m for m in model.modules() if isinstance(m, ALL_ACTIVATION_LIKE)]
        assert len(found) == ACTIVATION_SITES[name][0]
        assert all(type(m) is cls for m in found)
        if act == "leaky_relu":
            assert all(m.negative_slope == 0.01 for m in found)
        with torch.no_grad():
            outputs[act] = model(x)
    # Same seed -> same weights, so differing logits show the activation is really used.
    assert not torch.allclose(outputs["relu"], outputs["swish"])
    assert not torch.allclose(outputs["relu"], outputs["leaky_relu"])
