"""``leaderboard.tex``: the method × sparsity table of top-1 a paper prints (booktabs).

One table per panel (data set, model, activation): a row per method (named by its training
settings where one method ran with several), a column per target sparsity, each cell the top-1
mean ± the 95% t-interval over seeds — or ``mean (min–max)`` with fewer than three seeds, where a
t-interval says nothing (t₀.₉₇₅,₁ = 12.7) —, the best mean of each column in bold, and ``*``/``**``
where the paired t-test against the reference, Holm-corrected, gives p < 0.05/0.01. The dense
model's top-1 spans the row below the header. Needs ``\\usepackage{booktabs}``.
"""
from __future__ import annotations

import math

import pandas as pd

from benchmark.report.cells import DENSE, epochs_text, series_names
from benchmark.report.markdown import significance
from benchmark.report.reference import reference_of
from benchmark.report.spread import describe_board, format_top1

_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def escape(text: str) -> str:
    """``text`` safe inside a LaTeX document (method names hold ``_``, ``+``, ``[``, ``=``)."""
    return "".join(_ESCAPES.get(ch, ch) for ch in str(text))


def cell_text(row: pd.Series, best: bool) -> str:
    """``88.75 $\\pm$ 0.57``, or ``88.75 (88.10--89.30)`` under three seeds; bold mean when best; marks."""
    if row["top1"] is None or math.isnan(row["top1"]):
        return "--"
    mean = f"{100 * row['top1']:.2f}"
    text = format_top1(row, pm=r"$\pm$", dash="--")
    if best:
        text = rf"\textbf{{{mean}}}" + text[len(mean):]
    marks = significance(row.get("p_holm"))
    return text + (f"$^{{{marks}}}$" if marks else "")


def panel_table(rows: pd.DataFrame) -> list[str]:
    """The ``table`` environment of one panel's leaderboard rows."""
    rows = rows.assign(name=series_names(rows, pd.Series("panel", index=rows.index))[0])
    dense = rows[rows["method_base"].fillna(rows["method"]) == DENSE]
    pruned = rows.drop(dense.index)
    targets = sorted(pruned["target_sparsity"].dropna().unique())
    best = pruned.groupby("target_sparsity")["top1"].transform("max")
    first = rows.iloc[0]
    seeds = int(rows["n_seeds"].max())
    reference = reference_of(rows)
    lines = [r"\begin{table}[t]", r"\centering", rf"\begin{{tabular}}{{l{'r' * len(targets)}}}",
             r"\toprule", "method & " + " & ".join(rf"{100 * t:g}\%" for t in targets) + r" \\", r"\midrule"]
    for _, cell in dense.iterrows():
        spanning = rf"\multicolumn{{{len(targets)}}}{{c}}{{{cell_text(cell, False)}}}"
        lines.append(rf"{escape(cell['name'])} & {spanning} \\")
    if len(dense):
        lines.append(r"\midrule")
    for name, group in pruned.groupby("name", sort=False):
        by_target = {row["target_sparsity"]: row for _, row in group.iterrows()}
        texts = [cell_text(by_target[t], by_target[t]["top1"] == best[by_target[t].name]) if t in by_target
                 else "--" for t in targets]
        lines.append(f"{escape(name)} & " + " & ".join(texts) + r" \\")
    spread = escape(describe_board(rows)).replace("±", r"$\pm$").replace("–", "--").replace("≥", r"$\geq$")
    versus = (f"; $^{{*}}$/$^{{**}}$: paired t-test against {escape(reference)}, Holm-corrected, "
              f"$p < 0.05$/$0.01$" if reference else "")
    caption = (f"Top-1 test accuracy (\\%) of {escape(first['model'])} on {escape(first['dataset'])} "
               f"({escape(first['activation'])}), {epochs_text(rows)} epochs, {seeds} seeds: {spread}; "
               f"best per sparsity in bold{versus}.")
    return lines + [r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}", r"\end{table}"]


def to_latex(board: pd.DataFrame) -> str:
    """Every panel's table, separated by a blank line (the board's row order within a panel)."""
    if board.empty:
        return "% no runs\n"
    panels = board[["dataset", "model", "activation"]].astype(str).agg(" / ".join, axis=1)
    tables = ["\n".join(panel_table(rows)) for _, rows in board.groupby(panels, sort=True)]
    return "% prunebench leaderboard; needs \\usepackage{booktabs}\n" + "\n\n".join(tables) + "\n"
