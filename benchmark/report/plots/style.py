"""The one public style of every report figure: colours, markers, line styles, panel grids, legends, axes.

Figures are :class:`matplotlib.figure.Figure` objects rendered by the Agg canvas, so nothing here
needs (or touches) a display or pyplot's global state. Each method keeps one colour and one marker
across all figures; the dense model is always dark grey and dashed. The figure modules
(:mod:`.accuracy`, :mod:`.dead_rate`, :mod:`.dead_units`, :mod:`.layers`, :mod:`.ap_effect`) build
on these helpers; :mod:`.render` draws them all.
"""
from __future__ import annotations

import io
import math
from typing import Callable

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from benchmark.report.catalog import split_name, visual
from benchmark.report.cells import DENSE, series_names

DPI = 150
LINESTYLES = ["-", "-.", ":", (0, (6, 2, 1, 2, 1, 2))]  # per training config ("--" = dense)
AP_DASHES = (0, (5, 1.5))  # x+ap beside x's solid line
HATCHES = ["", "//", "..", "xx"]
PANEL_W, PANEL_H = 5.0, 3.8
LEGEND_W = 1.8  # inches added to a figure's width for its method legend
BAR_LAYER_LIMIT = 10  # grouped bars up to this many layers, lines beyond


# ----------------------------------------------------------------------------------------------
# style

def rc_context():
    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper", font_scale=1.3)}
    rc.update({"figure.dpi": DPI, "savefig.dpi": DPI, "axes.titleweight": "bold",
               "legend.frameon": False, "axes.spines.top": False, "axes.spines.right": False})
    return matplotlib.rc_context(rc)


def to_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


def to_pdf(fig: Figure) -> bytes:
    """The figure as vector PDF (fonts embedded as Type 42, which journals accept and editors keep
    editable); the creation date is left out, so the same report gives the same bytes."""
    buffer = io.BytesIO()
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        fig.savefig(buffer, format="pdf", bbox_inches="tight", facecolor="white",
                    metadata={"CreationDate": None, "Creator": "prunebench"})
    return buffer.getvalue()


class Style:
    """Each method label's colour, marker and line style — the same in every figure of every grid.

    Colour and marker come from the method's entry in the catalogue (:mod:`benchmark.report.catalog`,
    which mirrors the registry), never from which methods a grid happens to hold. ``x+ap`` is a
    darker shade of ``x``'s colour with ``x``'s marker and a dashed line; a label with non-default
    hyperparameters (``dnr[lambda_peak=0.01]``) is a lighter or darker shade of its method's colour;
    dense is dark grey and dashed. Line styles also separate training configurations.
    """

    def __init__(self, cells: pd.DataFrame) -> None:
        self.color: dict[str, tuple] = {}
        self.marker: dict[str, str] = {}
        self.is_ap: dict[str, bool] = {}
        names = cells.assign(method_base=cells["method_base"].fillna(cells["method"])).astype({"method": str})
        names["method_base"] = names["method_base"].astype(str)
        pairs = names[["method", "method_base"]].drop_duplicates()
        for name, group in pairs.groupby("method_base", sort=True):
            base, with_ap = split_name(name)
            color, marker = visual(base)
            shade = darker(color, 0.35) if with_ap else to_rgb(color)
            for k, label in enumerate(sorted(group["method"], key=lambda m: (m != name, m))):
                self.color[label] = variant(shade, k)
                self.is_ap[label] = with_ap
        for series, name in names[["series", "method_base"]].drop_duplicates().itertuples(index=False):
            self.marker[str(series)] = visual(split_name(name)[0])[1]

    def line(self, cell: pd.Series) -> dict:
        """Keyword arguments for a series' line: method colour; dashed for dense and AP, else by config."""
        if cell["is_dense"]:
            dashes = "--"
        elif int(cell["config_index"]):
            dashes = LINESTYLES[int(cell["config_index"]) % len(LINESTYLES)]
        else:
            dashes = AP_DASHES if self.is_ap.get(str(cell["method"])) else "-"
        return {"color": self.color[cell["method"]], "linestyle": dashes, "linewidth": 1.8}


def to_rgb(color: str | tuple) -> tuple[float, float, float]:
    return tuple(float(c) for c in matplotlib.colors.to_rgb(color))


def darker(color: str | tuple, amount: float) -> tuple[float, float, float]:
    """``color`` mixed with black by ``amount`` (0: unchanged, 1: black)."""
    return tuple((1 - amount) * c for c in to_rgb(color))


def lighter(color: str | tuple, amount: float) -> tuple[float, float, float]:
    """``color`` mixed with white by ``amount`` (0: unchanged, 1: white)."""
    return tuple(c + amount * (1 - c) for c in to_rgb(color))


def variant(color: tuple, k: int) -> tuple[float, float, float]:
    """The k-th shade of a method's colour: itself, then alternately lighter and darker."""
    if k == 0:
        return to_rgb(color)
    step = 0.3 * ((k + 1) // 2) / (1 + (k + 1) // 2)
    return lighter(color, step) if k % 2 else darker(color, step)


# ----------------------------------------------------------------------------------------------
# cells: panels and series names

def figure_cells(board: pd.DataFrame) -> pd.DataFrame:
    """The board plus ``panel`` (dataset / model [activation]) and ``series`` (legend name).

    A method run with several training configurations in one panel becomes one series per
    configuration, named by the keys that differ ("gmp [epochs=5]") in every figure.
    """
    cells = board.copy()
    cells["is_dense"] = cells["method_base"].fillna(cells["method"]).eq(DENSE)
    cells["panel"] = _panel_names(cells)
    cells["train_config"] = cells["train_config"].astype(str)
    cells["series"], cells["config_index"] = series_names(cells, cells["panel"])
    return cells


def _panel_names(cells: pd.DataFrame) -> pd.Series:
    """'dataset / model', plus the activation where one dataset/model was run with several."""
    n_act = cells.groupby(["dataset", "model"], dropna=False)["activation"].transform("nunique")
    names = cells["dataset"].astype(str) + " / " + cells["model"].astype(str)
    with_act = names + " (" + cells["activation"].astype(str) + ")"
    return with_act.where(n_act > 1, names)


def pct_label(x: float) -> str:
    return f"{100 * x:.3g}%"


def figure_grid(nrows: int, ncols: int) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(PANEL_W * ncols, PANEL_H * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def figure_legend(fig: Figure, axes: list[Axes], extra: list[Line2D] = ()) -> None:
    """The figure's legends: the methods (dense first, each once) on the right, the figure widened to
    hold it; what the markers and bars mean (``extra``) in a second legend below the panels."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    order = sorted(entries, key=lambda label: (not label.startswith(DENSE), label))
    if order:
        fig.legend([entries[label] for label in order], order, loc="outside right center", title="method")
        longest = max(len(label) for label in order)
        fig.set_figwidth(fig.get_figwidth() + LEGEND_W + 0.07 * max(0, longest - 12))
    if extra:
        fig.legend(list(extra), [h.get_label() for h in extra], loc="outside lower center",
                   ncols=min(2, len(extra)), fontsize="small")
        fig.set_figheight(fig.get_figheight() + 0.3 * math.ceil(len(extra) / 2) + 0.2)


def figure_title(fig: Figure, parts: list[str], ncols: int) -> None:
    """Figure title: one line on wide figures, two on two columns, one line per part on one column."""
    if ncols >= 3 or len(parts) == 1:
        text = " ".join(parts)
    else:
        text = "\n".join(parts) if ncols == 1 else parts[0] + "\n" + " ".join(parts[1:])
    fig.suptitle(text)


def column_count(places: list[tuple]) -> int:
    return 1 + max(col for *_, col in places)


def drop_unused(fig: Figure, axes: np.ndarray, used: set[tuple[int, int]]) -> None:
    for (i, j), ax in np.ndenumerate(axes):
        if (i, j) not in used:
            fig.delaxes(ax)


def measured_sparsity(cells: pd.DataFrame) -> pd.Series:
    """Each cell's mean measured sparsity (its target where none was measured)."""
    return cells["sparsity"].fillna(cells["target_sparsity"])


def sparsity_axis(ax: Axes, targets: np.ndarray, measured: np.ndarray | None = None) -> None:
    """Logit x axis when every target and measured point is in (0, 1) (so 90/95/99% spread out), else
    linear; ticks at the targets, limits covering the measured points too (when given: then the
    axis is labelled as measured sparsity, else as target sparsity)."""
    targets = np.sort(np.asarray(targets, dtype=float))
    extra = np.asarray([] if measured is None else measured, dtype=float)
    points = np.sort(np.concatenate([targets, extra]))
    logit = bool(len(targets)) and bool(((points > 0) & (points < 1)).all())
    scale = "logit scale" if logit else "linear scale"
    ax.set_xlabel(f"target sparsity (%; {scale})" if measured is None
                  else f"measured sparsity (%; {scale}; ticks: targets)")
    if logit:
        ax.set_xscale("logit")
        logits = np.log(points / (1 - points))
        pad = max(0.35, 0.08 * (logits[-1] - logits[0]))
        lo, hi = logits[0] - pad, logits[-1] + pad
        ax.set_xlim(1 / (1 + math.exp(-lo)), 1 / (1 + math.exp(-hi)))
        ax.xaxis.set_major_locator(ticker.FixedLocator(targets))
        ax.xaxis.set_minor_locator(ticker.NullLocator())
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: pct_label(v)))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    else:
        ax.xaxis.set_major_formatter(ticker.PercentFormatter(xmax=1, decimals=0))
        if len(targets):
            ax.xaxis.set_major_locator(ticker.FixedLocator(targets))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: pct_label(v)))


# ----------------------------------------------------------------------------------------------
# raw per-run data (histories, layer sparsity)

def history_frame(results: list[dict], run_cell: dict[str, str],
                  value: Callable[[dict], object] = lambda h: h.get("dead_rate_dynamic")) -> pd.DataFrame:
    """Long frame: cell_id, run_id, epoch, value (dynamic dead rate by default) from every complete run."""
    rows = [{"cell_id": run_cell[r["run_id"]], "run_id": r["run_id"], "epoch": h.get("epoch"),
             "value": value(h)}
            for r in results for h in (r.get("history") or []) if isinstance(h, dict)]
    frame = pd.DataFrame(rows, columns=["cell_id", "run_id", "epoch", "value"])
    frame["epoch"] = pd.to_numeric(frame["epoch"], errors="coerce")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return frame.dropna(subset=["epoch", "value"])


def target_panels(data: pd.DataFrame) -> list[tuple[str, list]]:
    """(panel, [target sparsities of pruned cells]) per panel; [None] when only dense cells."""
    out = []
    for panel, group in data.groupby("panel", sort=True):
        targets = sorted(group.loc[~group["is_dense"], "target_sparsity"].dropna().unique())
        out.append((panel, targets or [None]))
    return out


# ----------------------------------------------------------------------------------------------
# small-multiples layout: one panel per (dataset/model, target), wrapped, each panel on new rows

def panel_grid(layout: list[tuple[str, list]], ncols_max: int, panel_w: float = PANEL_W,
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
    fig, axes = figure_grid(row, ncols)
    fig.set_size_inches(panel_w * ncols, panel_h * row + 0.4)
    drop_unused(fig, axes, {(i, j) for i, j, _, _ in places})
    return fig, [(axes[i, j], panel, target, j) for i, j, panel, target in places]


def unify_ylim(axes: list[Axes]) -> None:
    lows, highs = zip(*(ax.get_ylim() for ax in axes))
    for ax in axes:
        ax.set_ylim(min(lows), max(highs))
