"""Activation-module factory.

The pruning harness locates hidden units by registering forward hooks on activation
*modules*, so every model in this package builds each activation through
:func:`make_activation`: one fresh module per use site, never shared, never
``inplace=True`` (a hook must see the post-activation tensor, and an in-place
activation would let later in-place ops alter what the hook stored).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Tuple, Type

from torch import nn

_FACTORIES: Dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(),
    "leaky_relu": lambda: nn.LeakyReLU(negative_slope=0.01),
    "swish": lambda: nn.SiLU(),
}

#: Module types produced by :func:`make_activation`; use with ``isinstance`` to find
#: every activation site of a model generically.
ACTIVATION_TYPES: Tuple[Type[nn.Module], ...] = (nn.ReLU, nn.LeakyReLU, nn.SiLU)


def available_activations() -> List[str]:
    """Return the sorted names accepted by :func:`make_activation`."""
    return sorted(_FACTORIES)


def check_activation(name: str) -> None:
    """Raise ``ValueError`` naming the valid choices if ``name`` is not a known activation."""
    if name not in _FACTORIES:
        raise ValueError(
            f"unknown activation {name!r}; choose from: {', '.join(available_activations())}"
        )


def make_activation(name: str) -> nn.Module:
    """Return a new activation module: ``relu`` -> ReLU, ``leaky_relu`` -> LeakyReLU(0.01),
    ``swish`` -> SiLU (x * sigmoid(x)). Each call returns a distinct, non-in-place instance."""
    check_activation(name)
    return _FACTORIES[name]()
