"""The registry of pruning methods and the machinery they share.

    >>> from methods import available_methods, get_method
    >>> method = get_method("gmp", target_sparsity=0.9, end_frac=0.6)

Shared mechanics live once: ``methods.masks`` (prunable tensors, exact top-k, applying masks to
weights and optimizer state, the public :func:`magnitude_masks`), ``methods.budgets`` (uniform /
ERK layer densities), ``methods.schedules`` (cubic sparsity, prune windows, LR schedules),
``methods.activations`` (dead-neuron hooks and the dead-unit detector), ``methods.units`` (hidden
units as parameter slices), ``methods.pressure`` (death pressure on a one-cycle) and
``methods.hparams`` (hyperparameter dataclasses).

Modifiers compose with a base by name: ``get_method("gmp+ap")`` is ``gmp`` with AP
(``methods.ap``) choosing part of each prune event's removals. Every registered method with
``has_prune_events`` composes; :func:`available_methods` lists the composed names too.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from methods import ap as _ap
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
    """Every name :func:`get_method` accepts, sorted: registered methods and ``<base>+ap``."""
    return sorted([*_REGISTRY, *(base + _ap.SUFFIX for base in ap_bases())])


def ap_bases() -> list[str]:
    """Registered methods AP composes with (those with prune events), sorted."""
    return sorted(name for name, cls in _REGISTRY.items() if _ap.can_compose(cls))


def method_descriptions() -> dict[str, str]:
    """Registered method name → one-line description (composed names are in :func:`modifier_descriptions`)."""
    return {name: _REGISTRY[name].description for name in sorted(_REGISTRY)}


def modifier_descriptions() -> dict[str, str]:
    """Modifier name → one-line description naming the bases it composes with."""
    return {_ap.MODIFIER: "Activate-while-Pruning (Liu et al. 2023): ap_share of each prune event's "
                          "removals go to the negative weights that moved least; write <base>+ap, "
                          f"base one of: {', '.join(ap_bases())}"}


def get_method_class(name: str) -> type[PruningMethod]:
    """The class of method ``name`` (``base+ap`` composes); ValueError with the valid names otherwise."""
    base, *modifiers = name.split("+")
    bases = ", ".join(ap_bases())
    if base == _ap.MODIFIER:
        raise ValueError(f"{name!r}: 'ap' is a modifier, not a method; write <base>+ap with base one "
                         f"of: {bases}")
    if base not in _REGISTRY:
        where = f" in {name!r}" if modifiers else ""
        close = difflib.get_close_matches(base, list(_REGISTRY), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown method {base!r}{where}{hint}; choose from: {', '.join(sorted(_REGISTRY))} "
                         f"(or <base>+ap with base one of: {bases})")
    if not modifiers:
        return _REGISTRY[base]
    unknown = sorted(set(modifiers) - {_ap.MODIFIER})
    if unknown:
        raise ValueError(f"unknown modifier {unknown[0]!r} in {name!r}; the only modifier is 'ap'")
    if len(modifiers) > 1:
        raise ValueError(f"{name!r} applies ap more than once; write {base}+ap")
    if not _ap.can_compose(_REGISTRY[base]):
        raise ValueError(f"{name!r}: AP rides on prune events and {base!r} has none; bases that work: "
                         f"{bases}")
    return _ap.compose(_REGISTRY[base])


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
    "method_descriptions", "modifier_descriptions", "ap_bases",
    "method_hparam_fields", "method_label", "prunable_weights", "register",
]
