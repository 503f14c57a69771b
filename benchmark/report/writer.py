"""The report files of a results folder: leaderboard.csv, .md and .tex, report.html and plots/*.

Everything is computed in memory first and each file is written atomically; paths come from
:mod:`benchmark.store.layout`. :func:`write_reports` reports on one folder's runs (the CLI, after a
grid); :func:`write_report_files` on any set of trusted results, such as several folders merged
(``python -m benchmark.report DIR DIR …``, see :mod:`benchmark.store.merge`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from benchmark.report.html import ReportInputs, to_html
from benchmark.report.leaderboard import leaderboard
from benchmark.report.latex import to_latex
from benchmark.report.markdown import to_markdown
from benchmark.report.pivot import pivot_text
from benchmark.store.files import atomic_write_bytes, atomic_write_text, first_link, real_folder
from benchmark.store.layout import ResultsLayout
from benchmark.store.merge import Conflict, FolderRecords, folder_records
from benchmark.store.run_store import RunStore, results_frame


class NoRunsError(ValueError):
    """Raised when a report is asked for and the store holds no readable run."""


@dataclass
class ReportPaths:
    """What :func:`write_reports` wrote; ``table`` is the Markdown text, ``pivot`` the compact method ×
    sparsity text the CLI prints (:mod:`benchmark.report.pivot`)."""

    csv: Path
    markdown: Path
    latex: Path
    html: Path
    plots: list[Path]
    table: str
    pivot: str

    def written(self) -> str:
        """``wrote leaderboard.csv, … and 8 figure files (plots/) in <folder>``, for the terminal."""
        names = [self.csv.name, self.markdown.name, self.latex.name, self.html.name]
        plots = f" and {len(self.plots)} figure files ({self.plots[0].parent.name}/)" if self.plots else ""
        return f"wrote {', '.join(names)}{plots} in {self.csv.parent}"


def write_reports(store: RunStore, out_dir: str | Path, run_ids: Iterable[str] | None = None,
                  sparsity_tolerance: float = 0.01, plots: bool = True,
                  expected_seeds: Iterable[int] | None = None, reference: str | None = None) -> ReportPaths:
    """Write the reports of ``store``'s runs (all of them, or ``run_ids``) under ``out_dir``.

    Only trusted results are read (see :mod:`benchmark.store.schema`); ``expected_seeds`` are the
    seeds the grid asked for (missing ones are flagged); ``reference`` the method every cell is
    compared with (default: gmp, else magnitude, else dense). The HTML report shows the folder's
    recorded command lines that planned these runs and its calibration searches. Raises
    :class:`NoRunsError` when the store (restricted to ``run_ids``) has no trusted run.
    """
    results = store.results(run_ids)
    if not results:
        raise NoRunsError(f"no runs found in {store.runs_dir}")
    return write_report_files(results, out_dir, [folder_records(store.root, len(results))],
                              sparsity_tolerance=sparsity_tolerance, plots=plots,
                              expected_seeds=expected_seeds, reference=reference)


def write_report_files(results: Sequence[dict[str, Any]], out_dir: str | Path,
                       folders: Sequence[FolderRecords], conflicts: Sequence[Conflict] = (),
                       duplicates: int = 0, sparsity_tolerance: float = 0.01, plots: bool = True,
                       expected_seeds: Iterable[int] | None = None,
                       reference: str | None = None) -> ReportPaths:
    """Write leaderboard.csv, .md, .tex, report.html and (optionally) plots/* for ``results``.

    ``folders`` are the results folders they were read from (their command lines and calibration
    searches appear in the HTML report), ``conflicts``/``duplicates`` what merging them found.
    Everything is computed in memory first, then each file is written atomically, so a failure
    never leaves a half-written file. Figures that cannot be drawn (nothing to show) are not
    written, and a stale copy of such a figure from an earlier report is removed.
    """
    if not results:
        raise NoRunsError("no runs to report on")
    runs = results_frame(results)
    board = leaderboard(runs, sparsity_tolerance, expected_seeds, reference)
    table = to_markdown(board, sparsity_tolerance)
    figures: dict[str, bytes] = {}
    if plots:
        from benchmark.report.plots.render import render_figures  # matplotlib only when plotting
        figures = render_figures(runs, list(results), board)
    page = to_html(ReportInputs(board, results, figures, folders, conflicts, duplicates, plots))
    out = ResultsLayout(Path(out_dir))
    csv_path = atomic_write_text(out.leaderboard_csv, board.to_csv(index=False), inside=out.root)
    md_path = atomic_write_text(out.leaderboard_md, table, inside=out.root)
    tex_path = atomic_write_text(out.leaderboard_tex, to_latex(board), inside=out.root)
    html_path = atomic_write_text(out.report_html, page, inside=out.root)
    if figures:  # a plots/ that is a link elsewhere is replaced by a real folder, never written through
        real_folder(out.root, out.plots_dir)
    plot_paths = [atomic_write_bytes(out.plots_dir / name, data, inside=out.root)
                  for name, data in figures.items()]
    if plots and first_link(out.root, out.plots_dir) is None:  # never delete through a link
        _remove_stale_figures(out.plots_dir, set(figures))
    return ReportPaths(csv=csv_path, markdown=md_path, latex=tex_path, html=html_path, plots=plot_paths,
                       table=table, pivot=pivot_text(board))


def _remove_stale_figures(plot_dir: Path, written: set[str]) -> None:
    from benchmark.report.plots.render import FIGURE_NAMES  # matplotlib only when plotting
    for name in FIGURE_NAMES:
        if name not in written:
            (plot_dir / name).unlink(missing_ok=True)
