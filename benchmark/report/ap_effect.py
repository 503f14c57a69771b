"""The AP premise, measured: each ``x+ap`` cell beside its ``x`` cell, paired by seed.

AP (Liu et al., TMLR 2023) claims it lowers the dynamic dead neuron rate and raises accuracy. For
every ``x+ap`` cell the leaderboard gets, over the seeds where both ``x+ap`` and ``x`` completed
(same dataset, model, activation, training configuration, target sparsity and base
hyperparameters — the ``x+ap`` ones without ``ap_share``):

``ap_base``                 the ``x`` cell's label
``ap_seeds``                number of paired seeds
``ap_base_top1``            mean top-1 of ``x`` over those seeds
``ap_delta_top1``           mean over seeds of top-1(``x+ap``) − top-1(``x``)
``ap_delta_top1_ci95``      half-width of the **paired** 95% t-interval: the CI of the per-seed
                            differences (same initialisation and data order per seed), NaN
                            below two pairs
``ap_delta_top1_min``/``_max``  the smallest and largest per-seed difference (what tables and
                            figures show instead of the interval below three pairs)
``ap_base_dnr``, ``ap_delta_dnr``, ``ap_delta_dnr_ci95``, ``ap_delta_dnr_min``/``_max``
                            the same for ``dead_rate_dynamic`` (last training epoch)

Reads only the run frame (no torch).
"""
from __future__ import annotations

import json
import math

import pandas as pd

from benchmark.report.catalog import AP_SUFFIX
from benchmark.report.cells import plain
from benchmark.report.spread import format_spread
from benchmark.report.statistics import ci95_halfwidth

SHARE_FIELD = "ap_share"
AP_COLUMNS = ["ap_base", "ap_seeds", "ap_base_top1", "ap_delta_top1", "ap_delta_top1_ci95",
              "ap_delta_top1_min", "ap_delta_top1_max", "ap_base_dnr", "ap_delta_dnr", "ap_delta_dnr_ci95",
              "ap_delta_dnr_min", "ap_delta_dnr_max"]
_METRICS = {"top1": "top1", "dnr": "dead_rate_dynamic"}


def _pair_key(row: pd.Series) -> tuple[str, bool]:
    """(what x and x+ap share, whether this run is an x+ap run)."""
    method = str(row["method"])
    is_ap = method.endswith(AP_SUFFIX)
    hparams = row.get("method_hparams")
    hparams = json.loads(hparams) if isinstance(hparams, str) and hparams else {}
    if is_ap:
        hparams.pop(SHARE_FIELD, None)
    key = {"method": method.removesuffix(AP_SUFFIX) if is_ap else method, "hparams": hparams,
           **{c: plain(row.get(c)) for c in ("dataset", "model", "activation", "target_sparsity")},
           "config": row["train_config"]}
    return json.dumps(key, sort_keys=True, default=str), is_ap


def ap_effect(runs: pd.DataFrame, cells: pd.Series) -> pd.DataFrame:
    """:data:`AP_COLUMNS` per ``x+ap`` cell with at least one paired seed, indexed by its cell id.

    ``runs`` is the run frame (:meth:`RunStore.frame`) with each run's ``train_config``
    (:func:`benchmark.report.cells.train_config`, as the leaderboard sets it); ``cells`` the cell id
    of each run.
    """
    empty = pd.DataFrame(columns=AP_COLUMNS, index=pd.Index([], name="cell_id"))
    complete = runs[runs["status"] == "complete"]
    if complete.empty or not complete["method"].astype(str).str.endswith(AP_SUFFIX).any():
        return empty
    keyed = complete.assign(cell=cells[complete.index])
    keyed[["pair", "is_ap"]] = keyed.apply(lambda r: pd.Series(_pair_key(r)), axis=1)
    base = keyed[~keyed["is_ap"]].drop_duplicates(["pair", "seed"])
    pairs = keyed[keyed["is_ap"]].merge(base, on=["pair", "seed"], suffixes=("", "_base"))
    rows = {}
    for cell, group in pairs.groupby("cell", sort=True):
        row = {"ap_base": group["label_base"].iloc[0], "ap_seeds": len(group)}
        for short, metric in _METRICS.items():
            x = pd.to_numeric(group[f"{metric}_base"], errors="coerce")
            delta = pd.to_numeric(group[metric], errors="coerce") - x
            row[f"ap_base_{short}"] = float(x.mean())
            row[f"ap_delta_{short}"] = float(delta.mean()) if delta.notna().any() else math.nan
            row[f"ap_delta_{short}_ci95"] = ci95_halfwidth(delta.tolist())
            row[f"ap_delta_{short}_min"] = float(delta.min())
            row[f"ap_delta_{short}_max"] = float(delta.max())
        rows[cell] = row
    if not rows:
        return empty
    frame = pd.DataFrame.from_dict(rows, orient="index")[AP_COLUMNS]
    frame.index.name = "cell_id"
    return frame


def _pp(row: pd.Series, short: str) -> str:
    """``+0.52 ± 0.30`` from three pairs on, ``+0.52 (+0.10–+0.94)`` for two, ``+0.52`` for one."""
    return format_spread(row, f"ap_delta_{short}", count="ap_seeds", spec="+.2f")


def _pct(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def ap_markdown(board: pd.DataFrame) -> str:
    """The leaderboard's "AP effect" section (empty string when the board has no paired x+ap cell)."""
    if "ap_seeds" not in board or not (pd.to_numeric(board["ap_seeds"], errors="coerce") > 0).any():
        return ""
    rows = board[pd.to_numeric(board["ap_seeds"], errors="coerce") > 0]
    lines = [
        "## AP effect: x+ap against x at the same seeds",
        "",
        "Δ = mean over seeds of (x+ap − x) in percentage points, paired by seed (same initialisation "
        "and data order); ± = 95% t-interval of the per-seed differences from three seeds on, "
        "(min–max) of the differences with two, nothing with one. "
        "Dynamic DNR = zero post-activation entries over the last training epoch; AP's premise is "
        "that it goes down (Δ < 0) and top-1 goes up.",
        "",
        "| dataset | model | x | x+ap | target | seeds | top-1 x (%) | top-1 x+ap (%) | Δ top-1 (pp) "
        "| dyn. DNR x (%) | dyn. DNR x+ap (%) | Δ dyn. DNR (pp) |",
        "|:--|:--|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for _, r in rows.iterrows():
        top1_ap = r["ap_base_top1"] + r["ap_delta_top1"]
        dnr_ap = r["ap_base_dnr"] + r["ap_delta_dnr"]
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['ap_base']} | {r['method']} | "
            f"{100 * r['target_sparsity']:g}% | {int(r['ap_seeds'])} | {_pct(r['ap_base_top1'])} | "
            f"{_pct(top1_ap)} | {_pp(r, 'top1')} | "
            f"{_pct(r['ap_base_dnr'])} | {_pct(dnr_ap)} | {_pp(r, 'dnr')} |")
    return "\n".join(lines + [""])
