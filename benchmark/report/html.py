"""``report.html``: the whole report on one self-contained page.

Everything is inside the file: the figures as base64 ``data:image/png`` images, the stylesheet in
a ``<style>`` element, no script, no external stylesheet, font, image or link (the only links are
the page's own ``#anchors``), so the page opens offline and survives being emailed. Sections: the
method × sparsity pivot, the full leaderboard, every figure with its caption, the flagged cells,
each method's resolved hyperparameters and citation, the training setup, and where the numbers
come from (command lines, environments, calibration searches, results folders). Every text from
the data is HTML-escaped.
"""
from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

from benchmark.report.catalog import citation
from benchmark.report.html_provenance import calibration_html, commands_html, environment_html, sources_html
from benchmark.report.html_style import CSS
from benchmark.report.html_tables import escape, flags_html, leaderboard_html, pivot_html, table
from benchmark.report.markdown import named
from benchmark.report.reference import reference_of
from benchmark.store.files import utc_now
from benchmark.store.merge import Conflict, FolderRecords


@dataclass
class ReportInputs:
    """What the page shows: the leaderboard, the trusted results it was computed from, the figures
    (file name → bytes; PNGs are embedded), the results folders read and what merging them found.
    ``plots`` says whether figures were asked for (``--no-plots`` leaves them out)."""

    board: pd.DataFrame
    results: Sequence[dict[str, Any]]
    figures: dict[str, bytes]
    folders: Sequence[FolderRecords]
    conflicts: Sequence[Conflict] = field(default_factory=list)
    duplicates: int = 0
    plots: bool = True


#: (anchor, title, subsections) of the page's sections, in order (the table of contents).
SECTIONS = [
    ("summary", "Top-1 by method and sparsity", []),
    ("leaderboard", "Leaderboard", []),
    ("figures", "Figures", []),
    ("flags", "Flags", []),
    ("methods", "Methods", [("hyperparameters", "Hyperparameters and citations"),
                            ("training", "Training setup")]),
    ("provenance", "Provenance", [("commands", "Command lines"), ("environment", "Environment"),
                                  ("calibration", "Calibration searches"), ("sources", "Results folders")]),
]


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,…`` of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def display_width(png: bytes) -> int | None:
    """The width (CSS px) at which a PNG's text reads at the page's text size: its physical width at
    96 px per inch, × 1.25 (figure text is set in ~9 pt, the page in 15 px); None when unknown."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        return None
    width = struct.unpack(">I", png[16:20])[0]
    at = png.find(b"pHYs", 0, 4096)  # pixels per metre, if the writer recorded it (matplotlib does)
    metric = at > 0 and len(png) > at + 12 and png[at + 12] == 1  # unit 1: the metre
    per_metre = struct.unpack(">I", png[at + 4:at + 8])[0] if metric else 0
    dpi = per_metre * 0.0254 if per_metre else 96.0
    return round(width * 96 / dpi * 1.25)


def figures_html(figures: dict[str, bytes], plots: bool) -> str:
    """Every PNG figure, embedded, with its caption (known figures first, in the report's order)."""
    pngs = [name for name in figures if name.endswith(".png")]
    if not pngs:
        why = "there was nothing to draw" if plots else "figures were not asked for (--no-plots)"
        return f'<p class="note">No figure: {why}.</p>'
    from benchmark.report.plots.render import FIGURE_CAPTIONS  # matplotlib only when there are figures
    order = [f"{stem}.png" for stem in FIGURE_CAPTIONS if f"{stem}.png" in figures]
    parts = []
    for name in order + sorted(set(pngs) - set(order)):
        stem = name[:-len(".png")]
        caption = FIGURE_CAPTIONS.get(stem, "")
        width = display_width(figures[name])
        size = f' width="{width}"' if width else ""
        image = f'<img src="{data_uri(figures[name])}"{size} alt="{escape(stem)}">'
        parts.append(f'<figure id="fig-{escape(stem)}">{image}'
                     f"<figcaption><b>{escape(stem)}.</b> {escape(caption)}</figcaption></figure>")
    pdfs = "PDF versions of the figures are in plots/ beside this page." if any(
        n.endswith(".pdf") for n in figures) else ""
    return "".join(parts) + (f'<p class="note">{pdfs}</p>' if pdfs else "")


def _hparams(text: Any) -> str:
    """A cell's resolved method hyperparameters (its ``method_hparams`` JSON) as a definition list."""
    try:
        values = json.loads(text) if isinstance(text, str) else (text or {})
    except ValueError:
        return escape(text)
    if not isinstance(values, dict):
        return escape(text)
    if not values:
        return '<span class="meta">none</span>'
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(json.dumps(v) if not isinstance(v, str) else v)}</dd>"
                    for k, v in sorted(values.items()))
    return f'<dl class="hparams">{items}</dl>'


def methods_html(board: pd.DataFrame) -> str:
    """One row per method as the tables name it: its resolved hyperparameters and its citation."""
    if board.empty:
        return "<p>No runs.</p>"
    cells = named(board).drop_duplicates(["name", "method_hparams"])
    rows = []
    for _, cell in cells.sort_values("name", kind="mergesort").iterrows():
        base = cell["method_base"] if isinstance(cell["method_base"], str) else str(cell["method"])
        short, full = citation(base)
        rows.append([escape(cell["name"]), _hparams(cell["method_hparams"]), escape(short), escape(full)])
    return table(["method", "hyperparameters (resolved)", "citation", "reference"], rows, [False] * 4,
                 cell_classes=[["name", "", "name", ""]] * len(rows))


def training_html(board: pd.DataFrame) -> str:
    """The training setup shared by the cells of each configuration (budget, optimiser, schedule, split)."""
    configs = sorted({c for c in board["train_config"].dropna().astype(str)}) if len(board) else []
    parsed = []
    for text in configs:
        try:
            parsed.append(json.loads(text))
        except ValueError:
            parsed.append({"config": text})
    keys = sorted({k for p in parsed for k in p})
    if not keys:
        return '<p class="note">No training setup recorded.</p>'
    columns = [f"configuration {i + 1}" for i in range(len(parsed))] if len(parsed) > 1 else ["value"]
    headers = ["setting"] + columns

    def text(value: Any) -> str:
        return value if isinstance(value, str) else "—" if value is None else json.dumps(value)

    rows = [[f"<b>{escape(k)}</b>"] + [escape(text(p.get(k))) for p in parsed] for k in keys]
    return table(headers, rows, [False] * len(headers))


def _toc() -> str:
    items = []
    for anchor, title, subsections in SECTIONS:
        sub = "".join(f'<li><a href="#{a}">{escape(t)}</a></li>' for a, t in subsections)
        nested = f"<ol>{sub}</ol>" if sub else ""
        items.append(f'<li><a href="#{anchor}">{escape(title)}</a>{nested}</li>')
    return f'<nav class="toc"><h2>Contents</h2><ol>{"".join(items)}</ol></nav>'


def _subtitle(inputs: ReportInputs) -> str:
    board = inputs.board
    panels = sorted(board[["dataset", "model"]].astype(str).agg(" / ".join, axis=1).unique()) if len(board) \
        else []
    reference = reference_of(board)
    parts = [", ".join(panels) or "no runs", f"{len(inputs.results)} runs"]
    parts += [f"reference: {reference}"] if reference else []
    parts += [f"merged from {len(inputs.folders)} results folders"] if len(inputs.folders) > 1 else []
    return " · ".join(escape(p) for p in parts) + f" · generated {escape(utc_now())}"


def to_html(inputs: ReportInputs) -> str:
    """The report page as one HTML document (UTF-8 text)."""
    board = inputs.board
    run_ids = [r.get("run_id") for r in inputs.results if r.get("run_id")]
    body = {
        "summary": pivot_html(board),
        "leaderboard": '<p class="note">One row per cell (all seeds of one configuration); the columns of '
                       "leaderboard.md. leaderboard.csv holds every column.</p>" + leaderboard_html(board),
        "figures": figures_html(inputs.figures, inputs.plots),
        "flags": flags_html(board),
        "methods": ('<h3 id="hyperparameters">Hyperparameters and citations</h3>' + methods_html(board)
                    + '<h3 id="training">Training setup</h3>' + training_html(board)),
        "provenance": ('<h3 id="commands">Command lines</h3>' + commands_html(inputs.folders, run_ids)
                       + '<h3 id="environment">Environment</h3>' + environment_html(inputs.results)
                       + '<h3 id="calibration">Calibration searches</h3>' + calibration_html(inputs.folders)
                       + '<h3 id="sources">Results folders</h3>'
                       + sources_html(inputs.folders, inputs.conflicts, inputs.duplicates)),
    }
    sections = "".join(f'<section id="{anchor}"><h2>{escape(title)}</h2>{body[anchor]}</section>'
                       for anchor, title, _ in SECTIONS)
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>prunebench report</title><style>{CSS}</style></head><body><main>"
            '<header class="title"><h1>prunebench report</h1>'
            f'<p class="subtitle">{_subtitle(inputs)}</p></header>'
            f"{_toc()}{sections}</main></body></html>\n")
