"""Statistics against a reference method: paired Δ top-1, its interval, a paired t-test, Holm, ranks.

For every cell (method × sparsity × training configuration) the leaderboard gets, against the
reference method's cell of the same data set, model, activation, training configuration and
target sparsity (the ``dense`` reference has one cell, at sparsity 0, for all targets), over the
seeds where both completed:

``reference``                the reference method
``delta_vs_reference``       mean over paired seeds of top-1(cell) − top-1(reference)
``delta_vs_reference_ci95``  half-width of the paired 95% t-interval (NaN below two pairs)
``p_value``                  two-sided paired t-test (the t statistic of the differences and
                             scipy's Student t CDF, as ``scipy.stats.ttest_rel``; NaN below two
                             pairs or when every difference is the same)
``p_holm``                   Holm's step-down adjustment over every cell of the report with a p-value
``rank``                     the method's mean rank by top-1 over the sparsities of its panel
                             (1 = best; ties share the mean rank; dense is not ranked)

Pairing by seed is what makes the test fair: every method of a seed starts from the same
weights and sees the same batches, so the per-seed difference removes the seed's own luck.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd
from scipy.special import stdtr  # Student's t CDF (scipy.stats costs a second of import per CLI run)

from benchmark.report.cells import DENSE
from benchmark.report.statistics import ci95_halfwidth

REFERENCE_COLUMNS = ["reference", "delta_vs_reference", "delta_vs_reference_ci95", "p_value", "p_holm",
                     "rank"]
#: Extra columns: how many seeds were paired, and the smallest and largest per-seed difference (what
#: tables and figures show instead of the interval below three pairs).
REFERENCE_RANGE_COLUMNS = ["reference_pairs", "delta_vs_reference_min", "delta_vs_reference_max"]
#: The reference when none is asked for: the first of these in the grid.
DEFAULT_REFERENCES = ("gmp", "magnitude", DENSE)
#: Columns that place two cells side by side (besides the target sparsity).
PANEL = ["dataset", "model", "activation", "train_config"]


def default_reference(methods: Iterable[str]) -> str:
    """``gmp`` if the grid has it, else ``magnitude``, else ``dense``."""
    present = set(methods)
    return next((m for m in DEFAULT_REFERENCES if m in present), DENSE)


def reference_of(board: pd.DataFrame) -> str | None:
    """The reference method a board's cells were compared with (None when it has none)."""
    given = board["reference"].dropna() if "reference" in board else pd.Series(dtype=object)
    return str(given.iloc[0]) if len(given) else None


def holm(p_values: Iterable[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (NaN stays NaN and is not counted).

    Written here because scipy has no Holm adjustment (``scipy.stats.false_discovery_control``
    does Benjamini–Hochberg/Yekutieli, which control another error rate): with m finite p-values
    sorted ascending, the i-th (1-based) becomes max over j ≤ i of min(1, (m − j + 1)·p_(j)).
    """
    values = [float(p) for p in p_values]
    finite = sorted((p, i) for i, p in enumerate(values) if not math.isnan(p))
    adjusted, running, m = list(values), 0.0, len(finite)
    for j, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (m - j) * p))
        adjusted[i] = running
    return adjusted


def paired(deltas: list[float]) -> tuple[float, float, float]:
    """(mean Δ, CI half-width, two-sided paired t-test p) of per-seed differences."""
    if not deltas:
        return math.nan, math.nan, math.nan
    mean, p = float(np.mean(deltas)), math.nan
    if len(deltas) >= 2 and len(set(deltas)) > 1:  # the paired t statistic: mean / (s / √n)
        t = mean / (float(np.std(deltas, ddof=1)) / math.sqrt(len(deltas)))
        p = float(2 * stdtr(len(deltas) - 1, -abs(t)))
    return mean, ci95_halfwidth(deltas), p


def paired_deltas(runs: pd.DataFrame, cells: pd.Series, reference: str) -> pd.DataFrame:
    """Per cell and seed, top-1(cell) − top-1(reference) where both completed: columns ``cell_id``,
    ``seed``, ``delta`` (the reference's own cells are left out).

    ``runs`` is the run frame with ``train_config`` set per run, ``cells`` the cell id of each run.
    The reference's cells are those whose label is ``reference`` (its default hyperparameters).
    """
    complete = runs[runs["status"] == "complete"].assign(cell=cells)
    complete = complete[complete["cell"].notna()]
    is_ref = complete["label"].astype(str) == reference
    ref_runs = complete[is_ref]
    rows = []
    for cell, group in complete[~is_ref].groupby("cell", sort=True):
        first = group.iloc[0]
        mine = ref_runs
        for column in PANEL:
            mine = mine[mine[column].astype(str) == str(first[column])]
        if reference != DENSE:
            mine = mine[mine["target_sparsity"] == first["target_sparsity"]]
        by_seed = dict(zip(mine["seed"], pd.to_numeric(mine["top1"], errors="coerce")))
        for seed, top1 in zip(group["seed"], pd.to_numeric(group["top1"], errors="coerce")):
            if seed in by_seed and not (math.isnan(top1) or math.isnan(by_seed[seed])):
                rows.append({"cell_id": cell, "seed": seed, "delta": float(top1) - float(by_seed[seed])})
    return pd.DataFrame(rows, columns=["cell_id", "seed", "delta"])


def reference_stats(runs: pd.DataFrame, cells: pd.Series, board: pd.DataFrame,
                    reference: str) -> pd.DataFrame:
    """:data:`REFERENCE_COLUMNS` then :data:`REFERENCE_RANGE_COLUMNS` for every cell of ``board``, indexed
    by cell id (see :func:`paired_deltas` for ``runs`` and ``cells``)."""
    deltas = paired_deltas(runs, cells, reference)
    stats = REFERENCE_COLUMNS[1:4] + REFERENCE_RANGE_COLUMNS
    rows = {cell: dict(zip(stats, [*paired(group["delta"].tolist()), len(group), group["delta"].min(),
                                   group["delta"].max()]))
            for cell, group in deltas.groupby("cell_id", sort=True)}
    frame = pd.DataFrame(rows, index=stats).T.reindex(board["cell_id"])
    frame["reference"] = reference
    frame["p_holm"] = holm(frame["p_value"].tolist())
    frame["rank"] = mean_ranks(board).to_numpy()
    frame.index.name = "cell_id"
    frame["reference_pairs"] = frame["reference_pairs"].fillna(0).astype(int)
    return frame[REFERENCE_COLUMNS + REFERENCE_RANGE_COLUMNS]


def mean_ranks(board: pd.DataFrame) -> pd.Series:
    """Each cell's method's mean rank by top-1 over the target sparsities of its panel (NaN for dense
    and for cells without a top-1)."""
    pruned = board[(board["method_base"].fillna(board["method"]) != DENSE) & board["top1"].notna()]
    if pruned.empty:
        return pd.Series(math.nan, index=board.index)
    panel = pruned[PANEL].astype(str).agg("|".join, axis=1)
    ranks = pruned.groupby([panel, pruned["target_sparsity"]])["top1"].rank(ascending=False, method="average")
    return ranks.groupby([panel, pruned["method"]]).transform("mean").reindex(board.index)
