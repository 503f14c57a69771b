"""The HTML report's tables: the method × sparsity pivot, the full leaderboard and the flags.

Every text that comes from the data (method names, flags, settings) is HTML-escaped here, with
:func:`escape`; the table builder :func:`table` takes cells that are already HTML.
"""
from __future__ import annotations

import html
from typing import Sequence

import pandas as pd

from benchmark.report.markdown import leaderboard_columns, named
from benchmark.report.cells import target_text
from benchmark.report.pivot import PivotCell, PivotPanel, legend, pivot_panels


def escape(value: object) -> str:
    """``value`` as text safe inside HTML content and (double- or single-quoted) attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool],
          css: str = "", caption: str = "", row_classes: Sequence[str] | None = None,
          cell_classes: Sequence[Sequence[str]] | None = None, lead: str = "") -> str:
    """A ``<table>`` whose header texts are escaped and whose body cells are HTML already; numeric
    columns are right-aligned. ``row_classes``/``cell_classes`` add CSS classes per row / cell;
    ``lead`` is HTML of rows put first in the body."""
    def cls(*names: str) -> str:
        joined = " ".join(n for n in names if n)
        return f' class="{joined}"' if joined else ""

    head = "".join(f"<th{cls('num' if num else '')} scope=\"col\">{escape(h)}</th>"
                   for h, num in zip(headers, numeric))
    body = []
    for i, row in enumerate(rows):
        extra = cell_classes[i] if cell_classes else [""] * len(row)
        cells = "".join(f"<td{cls('num' if num else '', more)}>{cell}</td>"
                        for cell, num, more in zip(row, numeric, extra))
        body.append(f"<tr{cls(row_classes[i] if row_classes else '')}>{cells}</tr>")
    title = f"<caption>{caption}</caption>" if caption else ""
    return (f'<div class="scroll"><table{cls(css)}>{title}<thead><tr>{head}</tr></thead>'
            f"<tbody>{lead}{''.join(body)}</tbody></table></div>")


def _pivot_cell(cell: PivotCell | None) -> tuple[str, str]:
    """(HTML, CSS classes) of one pivot cell: best in bold, marks as a superscript, flag as a tooltip."""
    if cell is None:
        return "—", ""
    marks = f"<sup>{escape(cell.marks)}</sup>" if cell.marks else ""
    flag = cell.row.get("flag")
    tooltip = f' title="{escape(flag)}"' if isinstance(flag, str) and flag else ""
    text = f"<span{tooltip}>{escape(cell.text)}{marks}</span>"
    classes = " ".join(c for c in ("best" if cell.best else "", "flagged" if tooltip else "") if c)
    return text, classes


def pivot_panel_html(panel: PivotPanel) -> str:
    """One panel's pivot: a heading, its budget and spread, the dense model's top-1 across the
    columns, then methods × target sparsities."""
    span = max(len(panel.targets), 1)
    dense = []
    for name, cell in panel.dense:
        text, css = _pivot_cell(cell)
        cell_css = f"num {css}".strip()
        dense.append(f'<tr class="dense"><td class="name">{escape(name)} (no pruning)</td>'
                     f'<td class="{cell_css}" colspan="{span}">{text}</td></tr>')
    body, classes = [], []
    for name, cells in panel.rows:
        pairs = [_pivot_cell(c) for c in cells]
        body.append([escape(name)] + [text for text, _ in pairs])
        classes.append(["name"] + [css for _, css in pairs])
    grid = table(["method"] + [target_text(t) for t in panel.targets], body,
                 [False] + [True] * len(panel.targets), css="pivot", cell_classes=classes,
                 lead="".join(dense))
    meta = f"{escape(panel.epochs)} epochs · {escape(panel.seeds)} · top-1 (%): {escape(panel.spread)}"
    return f'<h3>{escape(panel.title)}</h3><p class="meta">{meta}</p>{grid}'


def pivot_html(board: pd.DataFrame) -> str:
    """Every panel's pivot and the legend."""
    panels = pivot_panels(board)
    if not panels:
        return "<p>No runs.</p>"
    text = legend(board, best="bold", files=False)
    return "".join(pivot_panel_html(p) for p in panels) + f'<p class="legend">{escape(text)}</p>'


def leaderboard_html(board: pd.DataFrame) -> str:
    """The full leaderboard, one row per cell, the columns of leaderboard.md."""
    if board.empty:
        return "<p>No runs.</p>"
    board = named(board)
    columns = leaderboard_columns(board)
    rows = [[escape(fmt(row)) for _, fmt, _ in columns] for _, row in board.iterrows()]
    css = {"method": "name", "flag": "flag"}
    classes = [[css.get(header, "") for header, _, _ in columns] for _ in rows]
    return table([h for h, _, _ in columns], rows, [num for _, _, num in columns], css="board",
                 cell_classes=classes)


def flags_html(board: pd.DataFrame) -> str:
    """The cells whose ``flag`` is not empty (what is wrong with them), or a sentence saying none is."""
    flagged = named(board)
    flagged = flagged[flagged["flag"].apply(lambda f: isinstance(f, str) and bool(f))]
    if flagged.empty:
        return "<p>No cell is flagged: every target sparsity was met and every seed of the grid finished.</p>"
    rows = [[escape(r["dataset"]), escape(r["model"]), escape(r["activation"]), escape(r["name"]),
             target_text(r["target_sparsity"]), escape(r["flag"])] for _, r in flagged.iterrows()]
    classes = [["", "", "", "name", "", "flag"]] * len(rows)
    return table(["dataset", "model", "activation", "method", "target", "flag"], rows,
                 [False, False, False, False, True, False], cell_classes=classes)
