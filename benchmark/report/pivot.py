"""The method × target-sparsity pivot of top-1: what the terminal prints after a grid (and the HTML
report's summary table).

One block per panel (data set / model / activation): a header line naming the panel, the epochs
and how the seeds' spread is shown; the dense model's top-1 once; then a row per method (named by
its training settings where one method ran with several, as in every table) and a column per
target sparsity. A cell is the top-1 as :func:`benchmark.report.spread.format_top1` writes it,
``*``/``**`` when the paired test against the reference is significant after Holm's correction,
and ``▲`` on the best mean of its column (when at least two methods have one). Rows are ordered by
the method's mean rank over the panel's sparsities (best first). The text never exceeds the width
(100 columns by default): sparsities that do not fit are wrapped into further blocks, and a name
too long for even one column is shortened with ``…``. The flagged cells follow each panel (the first
:data:`MAX_FLAGS`). The full table stays in leaderboard.md/csv.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field

import pandas as pd

from benchmark.report.cells import DENSE, epochs_text, series_names, target_text
from benchmark.report.markdown import significance
from benchmark.report.reference import reference_of
from benchmark.report.spread import describe_board, format_top1

#: The widest line the terminal pivot writes.
WIDTH = 100
#: At most this many flagged cells are listed under a panel (all are in leaderboard.md and report.html).
MAX_FLAGS = 8
#: Marks the best mean of a column in the terminal pivot.
BEST_MARK = "▲"
_GAP = "  "


@dataclass(frozen=True)
class PivotCell:
    """One cell: its top-1 text (``88.75 ± 0.57``), significance marks, whether it is its column's best,
    and the leaderboard row it shows."""

    text: str
    marks: str
    best: bool
    row: pd.Series = field(compare=False, repr=False)


@dataclass(frozen=True)
class PivotPanel:
    """One panel's pivot: title (``synthetic / mlp / relu``), epochs and seeds (``3 seeds``), how the spread
    is shown, the dense cells, the target sparsities, one row per method and the flagged cells
    (name, target in words, flag)."""

    title: str
    epochs: str
    seeds: str
    spread: str
    dense: list[tuple[str, PivotCell]]
    targets: list[float]
    rows: list[tuple[str, list[PivotCell | None]]]
    flags: list[tuple[str, str, str]]

    @property
    def header(self) -> str:
        """``synthetic / mlp / relu — 6 epochs, 3 seeds: mean ± 95% t-interval over seeds``."""
        return f"{self.title} — {self.epochs} epochs, {self.seeds}: {self.spread}"


def _cell(row: pd.Series, best: bool) -> PivotCell:
    return PivotCell(format_top1(row), significance(row.get("p_holm")), best, row)


def _seeds(n_seeds: pd.Series) -> str:
    """``3 seeds``, ``2–3 seeds`` (cells without a complete seed left out), ``1 seed``."""
    found = sorted({int(v) for v in n_seeds.dropna() if v > 0}) or [0]
    text = str(found[0]) if len(found) == 1 else f"{found[0]}–{found[-1]}"
    return f"{text} seed{'' if text == '1' else 's'}"


def _panel(title: str, rows: pd.DataFrame) -> PivotPanel:
    is_dense = rows["method_base"].fillna(rows["method"]).astype(str) == DENSE
    dense, pruned = rows[is_dense], rows[~is_dense]
    targets = sorted(pruned["target_sparsity"].dropna().unique().tolist())
    top = pruned.groupby("target_sparsity")["top1"].agg(["max", "count"])
    best = {t: top.loc[t, "max"] for t in top.index if top.loc[t, "count"] >= 2}
    order = pruned.assign(order_rank=pruned["rank"].fillna(math.inf)).sort_values(
        ["order_rank", "name"], kind="mergesort")
    table = []
    for name, group in order.groupby("name", sort=False):
        by_target = {row["target_sparsity"]: row for _, row in group.iterrows()}
        table.append((str(name), [_cell(by_target[t], by_target[t]["top1"] == best.get(t)) if t in by_target
                                  else None for t in targets]))
    epochs = epochs_text(rows)
    flags = [(str(r["name"]), target_text(r["target_sparsity"]), str(r["flag"]))
             for _, r in pd.concat([dense, order]).iterrows() if isinstance(r["flag"], str) and r["flag"]]
    return PivotPanel(title, epochs, _seeds(rows["n_seeds"]), describe_board(rows),
                      [(str(r["name"]), _cell(r, False)) for _, r in dense.iterrows()], targets, table, flags)


def pivot_panels(board: pd.DataFrame) -> list[PivotPanel]:
    """Every panel's pivot, panels sorted by data set / model / activation."""
    if board.empty:
        return []
    panels = board[["dataset", "model", "activation"]].astype(str).agg(" / ".join, axis=1)
    board = board.assign(name=series_names(board, panels)[0])
    return [_panel(str(title), rows) for title, rows in board.groupby(panels, sort=True)]


def legend(board: pd.DataFrame, best: str = BEST_MARK, files: bool = True) -> str:
    """What the pivot's cells and marks mean, in one sentence (``best``: how the best cell is marked;
    ``files``: whether to say where the full table is)."""
    reference = reference_of(board)
    versus = (f"* / ** = paired t-test against {reference}, Holm-adjusted p < 0.05 / 0.01; "
              if reference else "")
    where = " All columns: leaderboard.md, leaderboard.csv, report.html." if files else ""
    return (f"top-1 (%), final epoch, {describe_board(board)}; {versus}{best} = best mean at that "
            f"sparsity; rows by mean rank.{where}")


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def _column(panel: PivotPanel, index: int) -> list[str]:
    """Header and body lines of one sparsity column, every line of the same width."""
    cells = [cells[index] for _, cells in panel.rows]
    text_w = max([len(target_text(panel.targets[index]))] + [len(c.text) for c in cells if c])
    mark_w = max([len(c.marks) for c in cells if c] + [0])
    best_w = 2 if any(c.best for c in cells if c) else 0
    body = [(c.text.rjust(text_w) + c.marks.ljust(mark_w) + (f" {BEST_MARK}" if c.best else "").ljust(best_w))
            if c else "—".rjust(text_w).ljust(text_w + mark_w + best_w) for c in cells]
    return [target_text(panel.targets[index]).rjust(text_w).ljust(text_w + mark_w + best_w)] + body


def _blocks(panel: PivotPanel, width: int) -> list[str]:
    """The method rows as text blocks of at most ``width`` columns (sparsities wrapped into blocks)."""
    columns = [_column(panel, i) for i in range(len(panel.targets))]
    widest = max(len(c[0]) for c in columns)
    name_w = min(max(len(n) for n, _ in panel.rows + [("method", None)]), max(width - len(_GAP) - widest, 1))
    names = ["method".ljust(name_w)] + [_shorten(n, name_w).ljust(name_w) for n, _ in panel.rows]
    lines: list[str] = []
    start = 0
    while start < len(columns):
        end, used = start, name_w
        while end < len(columns) and (end == start or used + len(_GAP) + len(columns[end][0]) <= width):
            used += len(_GAP) + len(columns[end][0])
            end += 1
        block = [names[i] + "".join(_GAP + c[i] for c in columns[start:end]) for i in range(len(names))]
        rule = "-" * min(used, width)
        lines += ([""] if start else []) + [block[0].rstrip(), rule] + [b.rstrip() for b in block[1:]]
        start = end
    return [_shorten(line, width) for line in lines]


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    return textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False) or [""]


def panel_text(panel: PivotPanel, width: int = WIDTH) -> list[str]:
    """One panel's lines: header, dense, the method × sparsity table, flags."""
    lines = _wrap(panel.header, width, "  ")
    for name, cell in panel.dense:
        lines += _wrap(f"{name} (no pruning): {cell.text}{cell.marks}", width, "  ")
    if panel.rows and panel.targets:
        lines += [""] + _blocks(panel, width)
    for name, target, flag in panel.flags[:MAX_FLAGS]:
        lines += _wrap(f"! {name} at {target}: {flag}", width, "    ")
    if len(panel.flags) > MAX_FLAGS:
        lines += _wrap(f"! … and {len(panel.flags) - MAX_FLAGS} more flagged cells (the flag column of "
                       "leaderboard.md)", width, "    ")
    return lines


def pivot_text(board: pd.DataFrame, width: int = WIDTH) -> str:
    """The whole terminal pivot: every panel, then the legend; no line longer than ``width``."""
    if board.empty:
        return "no runs"
    lines: list[str] = []
    for panel in pivot_panels(board):
        lines += panel_text(panel, width) + [""]
    return "\n".join(lines + _wrap(legend(board), width))
