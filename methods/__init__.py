"""The registry of pruning methods and the machinery they share.

    >>> from methods import available_methods, get_method
    >>> method = get_method("gmp", target_sparsity=0.9, end_frac=0.6)

Shared mechanics live once: ``methods.masks`` (prunable tensors, exact top-k, applying masks to
weights and optimizer state, the public :func:`magnitude_masks`), ``methods.budgets`` (uniform /
ERK layer densities), ``methods.schedules`` (cubic sparsity, prune windows, LR schedules),
``methods.activations`` (dead-neuron hooks and the dead-unit detector), ``methods.units`` (hidden
units as parameter slices), ``methods.pressure`` (death pressure on a one-cycle) and
``methods.hparams`` (hyperparameter dataclasses).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from methods import hparams as _hparams
from methods.base import Calibration, EpochPlan, MaskedMethod, OptimizerConfig, PruningMethod, method_label
from methods.demp import DemP
from methods.dnr import DNR
from methods.granet import SET, GraNet, GraNetST, RigL
from methods.grda import GRDAMethod
from methods.imp import IMP
from methods.magnitude import GMP, Dense, Magnitude, Random
from methods.masks import apply_masks, magnitude_masks, prunable_weights

_REGISTRY: dict[str, type[PruningMethod]] = {}


def register(cls: type[PruningMethod]) -> type[PruningMethod]:
    """Add a method class to the registry (usable as a decorator)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


for _cls in (Dense, Random, Magnitude, GMP, IMP, GraNet, GraNetST, RigL, SET, GRDAMethod, DNR, DemP):
    register(_cls)


def available_methods() -> list[str]:
    """Registered method names, sorted."""
    return sorted(_REGISTRY)


def method_descriptions() -> dict[str, str]:
    """Method name → one-line description."""
    return {name: _REGISTRY[name].description for name in available_methods()}


def get_method_class(name: str) -> type[PruningMethod]:
    """The class registered as ``name``; ValueError listing the valid names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from: {', '.join(available_methods())}") from None


def method_hparam_fields(name: str) -> list[dataclasses.Field]:
    """The hyperparameter fields of method ``name``."""
    return list(dataclasses.fields(get_method_class(name).Hparams))


def make_hparams(name: str, **values: Any) -> Any:
    """The validated hyperparameter dataclass of method ``name`` (strings are converted)."""
    return _hparams.build(get_method_class(name).Hparams, values, name)


def get_method(name: str, target_sparsity: float = 0.0, seed: int = 0, **hparams: Any) -> PruningMethod:
    """An instance of method ``name`` with the given target sparsity, seed and hyperparameters."""
    cls = get_method_class(name)
    if name == "dense" and target_sparsity:
        raise ValueError("method 'dense' takes no target sparsity")
    return cls(target_sparsity=target_sparsity, hparams=make_hparams(name, **hparams), seed=seed)


__all__ = [
    "Calibration", "EpochPlan", "MaskedMethod", "OptimizerConfig", "PruningMethod", "apply_masks",
    "available_methods", "get_method", "get_method_class", "magnitude_masks", "make_hparams",
    "method_descriptions",
    "method_hparam_fields", "method_label", "prunable_weights", "register",
]
