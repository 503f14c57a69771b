"""Hyperparameter dataclasses: declared once, validated once, turned into CLI flags by the harness.

Each field carries ``help`` and optionally ``choices`` or a numeric ``range`` in its metadata.
Types are ``int``, ``float``, ``str`` or ``bool``; ``coerce`` turns CLI strings into them.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any

from methods.budgets import BUDGETS

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def hp(default: Any, help: str, choices: tuple | None = None,
       range: tuple[float | None, float | None] | None = None) -> Any:
    """A hyperparameter field with its help text and constraints."""
    return field(default=default, metadata={"help": help, "choices": choices, "range": range})


def coerce(value: Any, kind: type) -> Any:
    """Convert ``value`` (possibly a CLI string) to ``kind``; ValueError with a short reason."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"expected true/false, got {value!r}")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ValueError(f"expected an integer, got {value!r}")
    try:
        converted = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"expected {kind.__name__}, got {value!r}") from None
    if kind is float and not math.isfinite(converted):
        raise ValueError(f"expected a finite number, got {value!r}")
    return converted


def field_type(f: dataclasses.Field) -> type:
    """The Python type of a hyperparameter field (annotations may be strings)."""
    names = {"int": int, "float": float, "str": str, "bool": bool}
    return names[f.type] if isinstance(f.type, str) else f.type


def validate(hparams: Any) -> None:
    """Check every field's choices and range; ValueError naming the field on violation."""
    for f in dataclasses.fields(hparams):
        value = getattr(hparams, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number; got {value!r}")
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ValueError(f"{f.name} must be one of {', '.join(map(str, choices))}; got {value!r}")
        bounds = f.metadata.get("range")
        if bounds:
            lo, hi = bounds
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise ValueError(f"{f.name} must be in [{lo}, {hi}]; got {value!r}")


def build(cls: type, values: dict[str, Any], method: str) -> Any:
    """Instantiate hyperparameter dataclass ``cls`` from (possibly string) ``values``, validated."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        valid = ", ".join(sorted(fields)) or "none"
        close = difflib.get_close_matches(unknown[0], list(fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"method {method!r} has no hyperparameter {', '.join(unknown)}{hint}; "
                         f"valid: {valid}")
    kwargs = {}
    for name, value in values.items():
        try:
            kwargs[name] = coerce(value, field_type(fields[name]))
        except ValueError as err:
            raise ValueError(f"{method}.{name}: {err}") from None
    hparams = cls(**kwargs)
    validate(hparams)
    return hparams


def as_dict(hparams: Any) -> dict[str, Any]:
    """Field values of a hyperparameter dataclass, sorted by name."""
    if not dataclasses.is_dataclass(hparams):
        return {}
    return {k: v for k, v in sorted(dataclasses.asdict(hparams).items())}


@dataclass(frozen=True)
class MaskHparams:
    """Where weights are removed: shared by every mask-based method."""
    scope: str = hp("global", "one magnitude threshold over all prunable tensors (global) or a "
                    "per-tensor budget (layer)", choices=("global", "layer"))
    budget: str = hp("uniform", "per-tensor densities when scope=layer", choices=BUDGETS)
    prune_first: bool = hp(True, "also prune the first conv/linear layer")
    prune_classifier: bool = hp(True, "also prune the classifier (last linear layer)")


def field_like(cls: type, name: str, default: Any = dataclasses.MISSING, help: str | None = None) -> Any:
    """A copy of hyperparameter field ``name`` of dataclass ``cls`` (its choices and range kept),
    optionally with another default or help text: for a method that shares a field with another."""
    source = {f.name: f for f in dataclasses.fields(cls)}[name]
    return hp(source.default if default is dataclasses.MISSING else default,
              help if help is not None else source.metadata["help"],
              choices=source.metadata.get("choices"), range=source.metadata.get("range"))
