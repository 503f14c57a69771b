"""The results folder's layout, declared once: every path the harness reads or writes under ``--out``.

::

    <out>/
      runs/<run_id>/result.json      one run's result (the store)
      runs/<run_id>/checkpoint.pt    an unfinished run's last checkpoint (``--checkpoint-every``)
      runs/<run_id>/lock             held by the runner computing the run (``lock.takeover`` while a
                                     runner takes a stale lock over)
      calibration/<key>.json         a calibration search shared by a cell's seeds (``<key>.lock``
                                     while one runs it)
      commands/<time>-<pid>-<uuid>.json  one grid invocation of the CLI: its command line, when, where
      leaderboard.csv, leaderboard.md, leaderboard.tex
      report.html                    the whole report on one self-contained page
      plots/<figure>.png, plots/<figure>.pdf

Modules ask this one for a path instead of spelling a name themselves.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RUNS_DIR = "runs"
RESULT_FILE = "result.json"
CHECKPOINT_FILE = "checkpoint.pt"
LOCK_FILE = "lock"
TAKEOVER_FILE = "lock.takeover"
CALIBRATION_DIR = "calibration"
COMMANDS_DIR = "commands"
PLOTS_DIR = "plots"
LEADERBOARD_CSV = "leaderboard.csv"
LEADERBOARD_MD = "leaderboard.md"
LEADERBOARD_TEX = "leaderboard.tex"
REPORT_HTML = "report.html"

#: A run id is a plain folder name (no separators, no leading dot).
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def is_run_id(name: object) -> bool:
    """Whether ``name`` can be a run folder's name."""
    return isinstance(name, str) and RUN_ID_PATTERN.match(name) is not None


@dataclass(frozen=True)
class ResultsLayout:
    """The paths of one results folder (nothing is created here)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def of_run_dir(cls, run_dir: str | Path) -> "ResultsLayout":
        """The layout a run folder ``<root>/runs/<run_id>`` belongs to."""
        return cls(Path(run_dir).parent.parent)

    @property
    def runs_dir(self) -> Path:
        return self.root / RUNS_DIR

    def run_dir(self, run_id: str) -> Path:
        """The folder of one run. Rejects ids that are not plain folder names."""
        if not is_run_id(run_id):
            raise ValueError(f"invalid run_id {run_id!r}")
        return self.runs_dir / run_id

    def result_file(self, run_id: str) -> Path:
        return self.run_dir(run_id) / RESULT_FILE

    @property
    def calibration_dir(self) -> Path:
        return self.root / CALIBRATION_DIR

    @property
    def commands_dir(self) -> Path:
        return self.root / COMMANDS_DIR

    @property
    def plots_dir(self) -> Path:
        return self.root / PLOTS_DIR

    @property
    def leaderboard_csv(self) -> Path:
        return self.root / LEADERBOARD_CSV

    @property
    def leaderboard_md(self) -> Path:
        return self.root / LEADERBOARD_MD

    @property
    def leaderboard_tex(self) -> Path:
        return self.root / LEADERBOARD_TEX

    @property
    def report_html(self) -> Path:
        return self.root / REPORT_HTML


def checkpoint_file(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_FILE


def lock_file(run_dir: str | Path) -> Path:
    return Path(run_dir) / LOCK_FILE


def takeover_file(run_dir: str | Path) -> Path:
    return Path(run_dir) / TAKEOVER_FILE
