"""Report figures: accuracy vs. sparsity, dynamic dead-neuron rate over training, per-layer sparsity.

Figures are built as :class:`matplotlib.figure.Figure` objects rendered by the Agg canvas, so
nothing here needs (or touches) a display or pyplot's global state. Each method keeps one colour
and one marker across all figures; the dense model is always dark grey and dashed.
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Callable

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from benchmark.report import DENSE, cell_keys
from benchmark.store import SPEC_PREFIX, atomic_write_bytes

FIGURE_NAMES = ("sparsity_vs_accuracy.png", "dead_rate_dynamic.png", "layer_sparsity.png", "dead_units.png",
                "ap_effect.png")
DPI = 150
DENSE_COLOR = "#3a3a3a"
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p"]
LINESTYLES = ["-", "-.", ":", (0, (6, 2, 1, 2, 1, 2))]  # per training config ("--" = dense)
HATCHES = ["", "//", "..", "xx"]
PANEL_W, PANEL_H = 5.0, 3.8
BAR_LAYER_LIMIT = 10  # grouped bars up to this many layers, lines beyond


# ----------------------------------------------------------------------------------------------
# public API

def plot_all(runs: pd.DataFrame, results: list[dict], board: pd.DataFrame, plot_dir: Path) -> list[Path]:
    """Draw every figure that has data into ``plot_dir`` (atomic writes); returns the paths written."""
    figures = render_figures(runs, results, board)
    return [atomic_write_bytes(Path(plot_dir) / name, data) for name, data in figures.items()]


def render_figures(runs: pd.DataFrame, results: list[dict], board: pd.DataFrame) -> dict[str, bytes]:
    """PNG bytes of each figure that has something to draw, keyed by file name (nothing on disk)."""
    if board.empty:
        return {}
    cells = _cells(board)
    style = _Style(cells)
    run_cell = dict(zip(runs["run_id"], cell_keys(runs))) if not runs.empty else {}
    complete = [r for r in results if r.get("status") == "complete" and r.get("run_id") in run_cell]
    builders: dict[str, Callable[[], Figure | None]] = {
        FIGURE_NAMES[0]: lambda: _fig_accuracy(cells, style),
        FIGURE_NAMES[1]: lambda: _fig_dead_rate(cells, style, _history_frame(complete, run_cell)),
        FIGURE_NAMES[2]: lambda: _fig_layers(cells, style, complete, run_cell),
        FIGURE_NAMES[3]: lambda: _fig_dead_units(cells, style, complete, run_cell),
        FIGURE_NAMES[4]: lambda: _fig_ap_effect(cells, style),
    }
    figures = {}
    with _rc():
        for name, build in builders.items():
            fig = build()
            if fig is not None:
                figures[name] = _png(fig)
    return figures


def _fig_layers(cells: pd.DataFrame, style: "_Style", results: list[dict],
                run_cell: dict[str, str]) -> Figure | None:
    from benchmark.plot_layers import fig_layers  # it builds on this module's helpers
    return fig_layers(cells, style, results, run_cell)


def _fig_ap_effect(cells: pd.DataFrame, style: "_Style") -> Figure | None:
    from benchmark.plot_ap_effect import fig_ap_effect  # it imports this module's helpers
    return fig_ap_effect(cells, style.color)


# ----------------------------------------------------------------------------------------------
# style

def _rc():
    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper", font_scale=1.3)}
    rc.update({"figure.dpi": DPI, "savefig.dpi": DPI, "axes.titleweight": "bold",
               "legend.frameon": False, "axes.spines.top": False, "axes.spines.right": False})
    return matplotlib.rc_context(rc)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


class _Style:
    """One colour per method label and one marker per series (shared by all figures); dense is grey."""

    def __init__(self, cells: pd.DataFrame) -> None:
        labels = sorted(set(cells.loc[~cells["is_dense"], "method"]))
        colorblind = [c for i, c in enumerate(sns.color_palette("colorblind", 10)) if i != 7]  # 7 = grey
        palette = colorblind if len(labels) <= len(colorblind) else sns.color_palette("husl", len(labels))
        self.color = {label: palette[i] for i, label in enumerate(labels)}
        self.color.update({label: DENSE_COLOR for label in cells.loc[cells["is_dense"], "method"]})
        series = sorted(set(cells["series"]))
        self.marker = {name: MARKERS[i % len(MARKERS)] for i, name in enumerate(series)}

    def line(self, cell: pd.Series) -> dict:
        """Keyword arguments for a series' line: method colour; dashed for dense, else by config."""
        dashes = "--" if cell["is_dense"] else LINESTYLES[int(cell["config_index"]) % len(LINESTYLES)]
        return {"color": self.color[cell["method"]], "linestyle": dashes, "linewidth": 1.8}


# ----------------------------------------------------------------------------------------------
# cells: panels and series names

def _cells(board: pd.DataFrame) -> pd.DataFrame:
    """The board plus ``panel`` (dataset / model [activation]) and ``series`` (legend name).

    A method run with several training configurations in one panel becomes one series per
    configuration, named by the keys that differ ("gmp [epochs=5]") in every figure.
    """
    cells = board.copy()
    cells["is_dense"] = cells["method_base"].fillna(cells["method"]).eq(DENSE)
    cells["panel"] = _panel_names(cells)
    cells["train_config"] = cells["train_config"].astype(str)
    cells["config_index"] = 0
    cells["series"] = cells["method"].astype(str)
    for _, group in cells.groupby("method"):
        if group.groupby("panel")["train_config"].nunique().max() < 2:
            continue  # one configuration per panel: the method's name says it all
        configs = sorted(group["train_config"].unique())
        suffix = _config_suffixes(configs)
        cells.loc[group.index, "config_index"] = [configs.index(c) for c in group["train_config"]]
        cells.loc[group.index, "series"] = [f"{m} [{suffix[c]}]"
                                            for m, c in zip(group["method"], group["train_config"])]
    return cells


def _panel_names(cells: pd.DataFrame) -> pd.Series:
    """'dataset / model', plus the activation where one dataset/model was run with several."""
    n_act = cells.groupby(["dataset", "model"], dropna=False)["activation"].transform("nunique")
    names = cells["dataset"].astype(str) + " / " + cells["model"].astype(str)
    with_act = names + " (" + cells["activation"].astype(str) + ")"
    return with_act.where(n_act > 1, names)


def _config_suffixes(configs: list[str]) -> dict[str, str]:
    """Short names for training configurations: only the keys whose values differ."""
    parsed = [json.loads(c) if c.startswith("{") else {"config": c} for c in configs]
    keys = sorted({k for p in parsed for k in p})
    varying = [k for k in keys if len({json.dumps(p.get(k)) for p in parsed}) > 1]
    return {c: ", ".join(f"{k.removeprefix(SPEC_PREFIX)}={p.get(k)}" for k in varying)
            for c, p in zip(configs, parsed)}


def _pct_label(x: float) -> str:
    return f"{100 * x:.3g}%"


def _grid(nrows: int, ncols: int) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(PANEL_W * ncols, PANEL_H * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _legend(fig: Figure, axes: list[Axes], extra: list[Line2D] = ()) -> None:
    """One legend for the whole figure, dense first, each entry once."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    order = sorted(entries, key=lambda label: (not label.startswith(DENSE), label))
    handles = [entries[label] for label in order] + list(extra)
    labels = order + [h.get_label() for h in extra]
    if handles:
        fig.legend(handles, labels, loc="outside right center", title="method")


def _suptitle(fig: Figure, parts: list[str], ncols: int) -> None:
    """Figure title: one line on wide figures, two on two columns, one line per part on one column."""
    if ncols >= 3 or len(parts) == 1:
        text = " ".join(parts)
    else:
        text = "\n".join(parts) if ncols == 1 else parts[0] + "\n" + " ".join(parts[1:])
    fig.suptitle(text)


def _ncols(places: list[tuple]) -> int:
    return 1 + max(col for *_, col in places)


def _drop_unused(fig: Figure, axes: np.ndarray, used: set[tuple[int, int]]) -> None:
    for (i, j), ax in np.ndenumerate(axes):
        if (i, j) not in used:
            fig.delaxes(ax)


# ----------------------------------------------------------------------------------------------
# 1. accuracy vs. sparsity

def _fig_accuracy(cells: pd.DataFrame, style: _Style) -> Figure | None:
    drawable = cells[cells["top1"].notna()]
    if drawable.empty:
        return None
    panels = sorted(drawable["panel"].unique())
    ncols = min(3, len(panels))
    fig, axes = _grid(math.ceil(len(panels) / ncols), ncols)
    flat = list(axes.flat)
    for ax, panel in zip(flat, panels):
        _accuracy_panel(ax, drawable[drawable["panel"] == panel], style)
    _drop_unused(fig, axes, {divmod(i, ncols) for i in range(len(panels))})
    hollow = [Line2D([], [], marker="o", linestyle="none", markerfacecolor="white", markeredgecolor="0.3",
                     markersize=7, label="hollow marker: flagged cell\n(see leaderboard)")]
    _legend(fig, flat[:len(panels)], hollow if (drawable["flag"].fillna("") != "").any() else [])
    _suptitle(fig, ["Top-1 test accuracy vs. measured sparsity", "(mean ± 95% CI over seeds)"], ncols)
    return fig


def _accuracy_panel(ax: Axes, cells: pd.DataFrame, style: _Style) -> None:
    pruned, dense = cells[~cells["is_dense"]], cells[cells["is_dense"]]
    for _, group in pruned.groupby("series", sort=True):
        _accuracy_series(ax, group.assign(x=_measured(group)).sort_values("x"), style)
    for _, cell in dense.iterrows():
        y, ci = 100 * cell["top1"], 100 * np.nan_to_num(cell["top1_ci95"])
        ax.axhline(y, zorder=1, label=cell["series"], **style.line(cell))
        ax.text(0.99, y, f"{cell['series']} {y:.2f}%", transform=ax.get_yaxis_transform(), ha="right",
                va="bottom", fontsize="small", color=DENSE_COLOR, zorder=5)
        if ci > 0:
            ax.axhspan(y - ci, y + ci, color=DENSE_COLOR, alpha=0.12, linewidth=0, zorder=0)
    _sparsity_axis(ax, pruned["target_sparsity"].dropna().unique(), _measured(pruned).dropna().to_numpy())
    ax.set_ylabel("top-1 test accuracy (%)")
    ax.set_title(cells["panel"].iloc[0])


def _accuracy_series(ax: Axes, group: pd.DataFrame, style: _Style) -> None:
    first = group.iloc[0]
    kwargs = style.line(first)
    x = group["x"].to_numpy(float)
    y = 100 * group["top1"].to_numpy(float)
    ci = 100 * group["top1_ci95"].to_numpy(float)
    ax.plot(x, y, label=first["series"], marker=style.marker[first["series"]], markersize=7,
            markerfacecolor=kwargs["color"], zorder=3, **kwargs)
    if len(x) > 1:
        ax.fill_between(x, y - ci, y + ci, color=kwargs["color"], alpha=0.18, linewidth=0, zorder=2)
    else:  # one sparsity: a band has no width, so the CI is an error bar
        ax.errorbar(x, y, yerr=np.nan_to_num(ci), fmt="none", ecolor=kwargs["color"], capsize=4, zorder=2)
    flagged = (group["flag"].fillna("") != "").to_numpy()
    if flagged.any():  # hollow markers on top of the filled ones
        ax.plot(x[flagged], y[flagged], linestyle="none", marker=style.marker[first["series"]], markersize=7,
                markerfacecolor="white", markeredgecolor=kwargs["color"], markeredgewidth=1.8, zorder=4)


def _measured(cells: pd.DataFrame) -> pd.Series:
    """Each cell's mean measured sparsity (its target where none was measured)."""
    return cells["sparsity"].fillna(cells["target_sparsity"])


def _sparsity_axis(ax: Axes, targets: np.ndarray, measured: np.ndarray | None = None) -> None:
    """Logit x axis when every target and measured point is in (0, 1) (so 90/95/99% spread out), else
    linear; ticks at the targets, limits covering the measured points too (when given: then the
    axis is labelled as measured sparsity, else as target sparsity)."""
    targets = np.sort(np.asarray(targets, dtype=float))
    extra = np.asarray([] if measured is None else measured, dtype=float)
    points = np.sort(np.concatenate([targets, extra]))
    ax.set_xlabel("target sparsity (% of prunable weights)" if measured is None
                  else "measured sparsity (% of prunable weights; ticks at the targets)")
    if len(targets) and ((points > 0) & (points < 1)).all():
        ax.set_xscale("logit")
        logits = np.log(points / (1 - points))
        pad = max(0.35, 0.08 * (logits[-1] - logits[0]))
        lo, hi = logits[0] - pad, logits[-1] + pad
        ax.set_xlim(1 / (1 + math.exp(-lo)), 1 / (1 + math.exp(-hi)))
        ax.xaxis.set_major_locator(ticker.FixedLocator(targets))
        ax.xaxis.set_minor_locator(ticker.NullLocator())
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: _pct_label(v)))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    else:
        ax.xaxis.set_major_formatter(ticker.PercentFormatter(xmax=1, decimals=0))
        if len(targets):
            ax.xaxis.set_major_locator(ticker.FixedLocator(targets))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: _pct_label(v)))


# ----------------------------------------------------------------------------------------------
# raw per-run data (histories, layer sparsity)

def _history_frame(results: list[dict], run_cell: dict[str, str],
                   value: Callable[[dict], object] = lambda h: h.get("dead_rate_dynamic")) -> pd.DataFrame:
    """Long frame: cell_id, run_id, epoch, value (dynamic dead rate by default) from every complete run."""
    rows = [{"cell_id": run_cell[r["run_id"]], "run_id": r["run_id"], "epoch": h.get("epoch"),
             "value": value(h)}
            for r in results for h in (r.get("history") or []) if isinstance(h, dict)]
    frame = pd.DataFrame(rows, columns=["cell_id", "run_id", "epoch", "value"])
    frame["epoch"] = pd.to_numeric(frame["epoch"], errors="coerce")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return frame.dropna(subset=["epoch", "value"])


def _target_panels(data: pd.DataFrame) -> list[tuple[str, list]]:
    """(panel, [target sparsities of pruned cells]) per panel; [None] when only dense cells."""
    out = []
    for panel, group in data.groupby("panel", sort=True):
        targets = sorted(group.loc[~group["is_dense"], "target_sparsity"].dropna().unique())
        out.append((panel, targets or [None]))
    return out


# ----------------------------------------------------------------------------------------------
# small-multiples layout: one panel per (dataset/model, target), wrapped, each panel on new rows

def _panel_grid(layout: list[tuple[str, list]], ncols_max: int, panel_w: float = PANEL_W,
                panel_h: float = PANEL_H) -> tuple[Figure, list[tuple[Axes, str, float | None, int]]]:
    """Figure with one axes per (panel, target); each panel starts a new row, rows hold <= ncols_max.

    Returns the figure and (axes, panel, target, column) for each axes, in reading order.
    """
    ncols = min(ncols_max, max(len(targets) for _, targets in layout))
    places = []
    row = 0
    for panel, targets in layout:
        for k, target in enumerate(targets):
            places.append((row + k // ncols, k % ncols, panel, target))
        row += math.ceil(len(targets) / ncols)
    fig, axes = _grid(row, ncols)
    fig.set_size_inches(panel_w * ncols, panel_h * row + 0.4)
    _drop_unused(fig, axes, {(i, j) for i, j, _, _ in places})
    return fig, [(axes[i, j], panel, target, j) for i, j, panel, target in places]


def _unify_ylim(axes: list[Axes]) -> None:
    lows, highs = zip(*(ax.get_ylim() for ax in axes))
    for ax in axes:
        ax.set_ylim(min(lows), max(highs))


# ----------------------------------------------------------------------------------------------
# 2. dynamic dead-neuron rate over training

def _fig_dead_rate(cells: pd.DataFrame, style: _Style, history: pd.DataFrame,
                   ylabel: str = "dynamic dead rate (%)", title: list[str] | None = None) -> Figure | None:
    if history.empty:
        return None
    data = history.merge(cells, on="cell_id")
    fig, places = _panel_grid(_target_panels(data), ncols_max=3)
    for ax, panel, target, col in places:
        _dead_rate_panel(ax, data[data["panel"] == panel], target, style)
        ax.set_title(panel if target is None else f"{panel}, target {_pct_label(target)}")
        ax.set_ylabel(ylabel if col == 0 else "")
    for panel in {p for _, p, _, _ in places}:
        _unify_ylim([ax for ax, p, _, _ in places if p == panel])
    _legend(fig, [ax for ax, _, _, _ in places])
    title = title or ["Dynamic dead-neuron rate during training:",
                      "zero post-activation entries on training batches",
                      "(mean over seeds, band = min–max; dense = reference)"]
    _suptitle(fig, title, _ncols(places))
    return fig


def _dead_rate_panel(ax: Axes, rows: pd.DataFrame, target: float | None, style: _Style) -> None:
    shown = rows[rows["is_dense"] | (rows["target_sparsity"] == target)]
    for series, group in shown.groupby("series", sort=True):
        stat = group.groupby("epoch")["value"].agg(["mean", "min", "max"]).sort_index() * 100
        kwargs = style.line(group.iloc[0])
        ax.plot(stat.index, stat["mean"], label=series, zorder=3, **kwargs)
        ax.fill_between(stat.index, stat["min"], stat["max"], color=kwargs["color"], alpha=0.15,
                        linewidth=0, zorder=2)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))


def _fig_dead_units(cells: pd.DataFrame, style: _Style, results: list[dict],
                    run_cell: dict[str, str]) -> Figure | None:
    from benchmark.plot_dead_units import fig_dead_units  # it builds on this module's helpers
    return fig_dead_units(cells, style, results, run_cell)
