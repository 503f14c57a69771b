"""Cells and training configurations: which runs are seeds of one cell, and what a cell's training
setup is (the spec columns that are neither the cell's identity nor where it executed)."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd

from benchmark.report.statistics import is_missing
from benchmark.spec import SEMANTIC_FIELDS, RunSpec
from benchmark.store.run_store import SPEC_PREFIX, known_spec_columns

#: Spec fields that identify the cell but are not part of its training configuration.
CELL_FIELDS = {"dataset", "model", "activation", "method", "method_hparams", "target_sparsity", "seed"}
#: Spec fields saying where/how a run executes (not part of the run id, so not of the configuration).
EXECUTION_FIELDS = ({f.name for f in dataclasses.fields(RunSpec)} - set(SEMANTIC_FIELDS)) | {"spec_device"}
DENSE = "dense"


def plain(value):
    """A JSON-friendly scalar for keys: NaN -> None, numpy -> Python."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def target_text(target: float | None) -> str:
    """A target sparsity in every table: ``90%`` for 0.9, ``—`` when missing."""
    return "—" if is_missing(target) else f"{100 * float(target):g}%"


def epochs_text(rows: pd.DataFrame) -> str:
    """The epoch budgets of some leaderboard rows: ``6``, or ``6/10`` when they differ (``?`` if none)."""
    return "/".join(str(int(e)) for e in sorted(rows["epochs"].dropna().unique())) or "?"


def spec_columns(runs: pd.DataFrame) -> list[str]:
    known = runs.attrs.get("spec_columns") or known_spec_columns()
    return [c for c in known if c in runs.columns]


def training_config_columns(runs: pd.DataFrame) -> list[str]:
    """Spec columns describing the training setup (budget, optimiser, schedule, split)."""
    return [c for c in spec_columns(runs) if c not in CELL_FIELDS | EXECUTION_FIELDS]


def train_config(row: pd.Series, columns: list[str]) -> str:
    return json.dumps({c: plain(row[c]) for c in columns}, sort_keys=True, default=str)


def cell_keys(runs: pd.DataFrame) -> pd.Series:
    """The cell of each run: its ``cell_id``, or (when missing) its spec without seed and execution."""
    spec_cols = [c for c in spec_columns(runs) if c != "seed" and c not in EXECUTION_FIELDS]

    def key(row: pd.Series) -> str:
        cell_id = plain(row.get("cell_id"))
        if cell_id:
            return str(cell_id)
        return "spec:" + json.dumps({c: plain(row[c]) for c in spec_cols}, sort_keys=True, default=str)

    if runs.empty:
        return pd.Series([], index=runs.index, dtype=object)
    return runs.apply(key, axis=1)


def series_names(cells: pd.DataFrame, panels: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Each cell's name in tables and legends, and the index of its training configuration.

    A method run with several training configurations in one panel (``panels``: the cell's
    dataset/model/activation) is named by the settings that differ, in every panel:
    ``dense [threads=1]`` beside ``dense [threads=2]``. Otherwise the name is the method's.
    """
    names = cells["method"].astype(str).copy()
    index = pd.Series(0, index=cells.index)
    configs_of = cells["train_config"].astype(str)
    for _, group in cells.groupby("method"):
        if configs_of[group.index].groupby(panels[group.index]).nunique().max() < 2:
            continue  # one configuration per panel: the method's name says it all
        configs = sorted(configs_of[group.index].unique())
        suffix = config_suffixes(configs)
        index[group.index] = [configs.index(c) for c in configs_of[group.index]]
        names[group.index] = [f"{m} [{suffix[c]}]" for m, c in zip(group["method"], configs_of[group.index])]
    return names, index


def config_suffixes(configs: list[str]) -> dict[str, str]:
    """Short names for training configurations: only the keys whose values differ."""
    parsed = [json.loads(c) if c.startswith("{") else {"config": c} for c in configs]
    keys = sorted({k for p in parsed for k in p})
    varying = [k for k in keys if len({json.dumps(p.get(k)) for p in parsed}) > 1]
    return {c: ", ".join(f"{k.removeprefix(SPEC_PREFIX)}={p.get(k)}" for k in varying)
            for c, p in zip(configs, parsed)}
