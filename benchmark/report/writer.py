"""The report files of a results folder: leaderboard.csv, leaderboard.md and plots/*.png.

Everything is computed in memory first and each file is written atomically; paths come from
:mod:`benchmark.store.layout`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from benchmark.report.leaderboard import leaderboard
from benchmark.report.latex import to_latex
from benchmark.report.markdown import to_markdown
from benchmark.store.files import atomic_write_bytes, atomic_write_text, first_link, real_folder
from benchmark.store.layout import ResultsLayout
from benchmark.store.run_store import RunStore, results_frame


class NoRunsError(ValueError):
    """Raised when a report is asked for and the store holds no readable run."""


@dataclass
class ReportPaths:
    """What :func:`write_reports` wrote; ``table`` is the Markdown text (the CLI prints it)."""

    csv: Path
    markdown: Path
    latex: Path
    plots: list[Path]
    table: str


def write_reports(store: RunStore, out_dir: str | Path, run_ids: Iterable[str] | None = None,
                  sparsity_tolerance: float = 0.01, plots: bool = True,
                  expected_seeds: Iterable[int] | None = None, reference: str | None = None) -> ReportPaths:
    """Write leaderboard.csv, leaderboard.md and (optionally) plots/*.png under ``out_dir``.

    Everything is computed in memory first, then each file is written atomically, so a failure
    never leaves a half-written report. Figures that cannot be drawn (nothing to show) are not
    written, and a stale copy of such a figure from an earlier report is removed.
    Only trusted results are read (see :mod:`benchmark.store.schema`); ``expected_seeds`` are the seeds
    the grid asked for (missing ones are flagged); ``reference`` the method every cell is compared
    with (default: gmp, else magnitude, else dense). Raises :class:`NoRunsError` when the store
    (restricted to ``run_ids``) has no trusted run.
    """
    results = store.results(run_ids)
    if not results:
        raise NoRunsError(f"no runs found in {store.runs_dir}")
    runs = results_frame(results)
    board = leaderboard(runs, sparsity_tolerance, expected_seeds, reference)
    table = to_markdown(board, sparsity_tolerance)
    figures: dict[str, bytes] = {}
    if plots:
        from benchmark.report.plots.render import render_figures  # matplotlib only when plotting
        figures = render_figures(runs, results, board)
    out = ResultsLayout(Path(out_dir))
    csv_path = atomic_write_text(out.leaderboard_csv, board.to_csv(index=False), inside=out.root)
    md_path = atomic_write_text(out.leaderboard_md, table, inside=out.root)
    tex_path = atomic_write_text(out.leaderboard_tex, to_latex(board), inside=out.root)
    if figures:  # a plots/ that is a link elsewhere is replaced by a real folder, never written through
        real_folder(out.root, out.plots_dir)
    plot_paths = [atomic_write_bytes(out.plots_dir / name, data, inside=out.root)
                  for name, data in figures.items()]
    if plots and first_link(out.root, out.plots_dir) is None:  # never delete through a link
        _remove_stale_figures(out.plots_dir, set(figures))
    return ReportPaths(csv=csv_path, markdown=md_path, latex=tex_path, plots=plot_paths, table=table)


def _remove_stale_figures(plot_dir: Path, written: set[str]) -> None:
    from benchmark.report.plots.render import FIGURE_NAMES  # matplotlib only when plotting
    for name in FIGURE_NAMES:
        if name not in written:
            (plot_dir / name).unlink(missing_ok=True)
