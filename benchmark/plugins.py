"""Plugins: a user's method, model or data set, first-class in every process of a grid.

A plugin is a Python module that registers what it brings through the public functions the
built-ins use — :func:`methods.register` for a method class, :func:`models.register_model` for a
network builder, :func:`benchmark.data.registry.register_dataset` for a data set — when imported.
It is named with ``--plugin package.module`` (repeatable) or, for an installed package, by an
entry point in the group :data:`ENTRY_POINT_GROUP`::

    [project.entry-points."prunebench.plugins"]
    my_method = "my_package.prunebench_plugin"

The driver imports every plugin before it plans the grid (so ``--list``, the hyperparameter flags,
run ids, reports and plots know them) and puts their names in :data:`ENVIRONMENT_VARIABLE`;
every worker — a local process, a Ray task (the variable travels in its ``runtime_env``), a SLURM
job (which inherits the environment) — imports them before its first run
(:func:`load_from_environment`). A plugin must be importable where the workers run (installed,
or on ``PYTHONPATH``).
"""
from __future__ import annotations

import importlib
import os
from importlib import metadata
from typing import Iterable

ENTRY_POINT_GROUP = "prunebench.plugins"
ENVIRONMENT_VARIABLE = "PRUNEBENCH_PLUGINS"

_LOADED: list[str] = []
_SCANNED: set[str] = set()  # the environment values already loaded (each worker's runs after the first)


class PluginError(ImportError):
    """A plugin could not be imported; the message is one line naming it and why."""


def _import(name: str, target: str) -> None:
    try:
        importlib.import_module(target)
    except Exception as err:  # noqa: BLE001 - any failure of user code becomes one clear line
        raise PluginError(f"cannot load plugin {name!r}: {type(err).__name__}: {err}") from err


def entry_point_plugins() -> list[metadata.EntryPoint]:
    """The installed packages' plugins (entry-point group :data:`ENTRY_POINT_GROUP`), by name."""
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def load_plugins(modules: Iterable[str] = (), entry_points: bool = True) -> list[str]:
    """Import the named plugin modules, then (``entry_points``) the installed ones; each once.

    Returns every plugin loaded in this process so far (module names; ``entry-point:<name>`` for
    entry points) and records the modules in :data:`ENVIRONMENT_VARIABLE` for the workers this
    process starts. Raises :class:`PluginError` (one line) when one cannot be imported.
    """
    for module in modules:
        module = module.strip()
        if not module:
            raise PluginError("a plugin name is empty; give --plugin package.module")
        if module not in _LOADED:
            _import(module, module)
            _LOADED.append(module)
    if entry_points:
        for ep in entry_point_plugins():
            key = f"entry-point:{ep.name}"
            if key not in _LOADED:
                _import(ep.name, ep.module)
                _LOADED.append(key)
    named = [m for m in _LOADED if not m.startswith("entry-point:")]
    if named:
        os.environ[ENVIRONMENT_VARIABLE] = ",".join(named)
    return list(_LOADED)


def load_from_environment() -> list[str]:
    """In a worker: import the plugins the driver loaded (:data:`ENVIRONMENT_VARIABLE`, entry points)."""
    value = os.environ.get(ENVIRONMENT_VARIABLE, "")
    if value in _SCANNED:
        return list(_LOADED)
    loaded = load_plugins([n for n in value.split(",") if n.strip()])
    _SCANNED.add(value)
    return loaded


def forwarded_environment() -> dict[str, str]:
    """The plugin variable, for workers that do not inherit this process's environment (Ray tasks)."""
    value = os.environ.get(ENVIRONMENT_VARIABLE)
    return {ENVIRONMENT_VARIABLE: value} if value else {}
