"""Run storage: one folder per run, atomic JSON writes, and a DataFrame view of all runs.

Layout: :mod:`benchmark.store.layout` (``<root>/runs/<run_id>/result.json``).

The store persists the result dict produced by ``benchmark.engine.train`` as-is (after making it
JSON-safe, with a checksum of its content) and never imports torch: everything here reads and
writes plain JSON.

**Never outside the results folder.** The store neither reads nor writes through a symbolic link
between the results folder and a result: a linked ``runs/``, run folder or ``result.json`` is
reported by :meth:`RunStore.problems` and treated as absent, :meth:`RunStore.save` refuses to write
through it, and :meth:`RunStore.claim_folder` (called by the driver before it locks a run) replaces
such links by real folders, leaving what they point to untouched.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd

from benchmark.spec import SEMANTIC_FIELDS
from benchmark.store.files import atomic_write_text, check_inside, first_link, json_safe, real_folder
from benchmark.store.layout import RESULT_FILE, ResultsLayout, is_run_id
from benchmark.store.schema import problem, with_checksum

__all__ = ["RunStore", "results_frame"]

#: Columns every frame has, in this order, even when the store is empty.
CORE_COLUMNS = ["run_id", "cell_id", "status", "error", "label"]
#: Why a failed run failed (diverged, cuda_oom, worker_died, error); None for complete runs.
FAILURE_COLUMN = "failure_reason"

#: Spec fields known today (flattened into the frame in this order; unknown fields follow).
SPEC_FIELDS = list(SEMANTIC_FIELDS)

#: Metric fields known today (see the Metrics table of the design).
METRIC_FIELDS = [
    "top1", "val_top1", "sparsity", "sparsity_all", "neuron_sparsity",
    "dead_rate_static", "dead_rate_dynamic", "params", "params_nonzero", "macs_dense",
    "macs_sparse", "macs_live", "train_time_s", "epochs", "num_classes",
]

#: Environment fields copied into the frame.
ENV_FIELDS = ["device"]

#: Prefix given to a spec field whose name is taken by a core, metric or environment column
#: (``spec.epochs`` is the planned budget and becomes ``spec_epochs``; ``epochs`` is what ran).
SPEC_PREFIX = "spec_"


class RunStore:
    """A folder of runs, ``root/runs/<run_id>/result.json``."""

    def __init__(self, root: str | Path) -> None:
        self.layout = ResultsLayout(Path(root))
        self.root = self.layout.root
        self.runs_dir = self.layout.runs_dir

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def run_dir(self, run_id: str) -> Path:
        """The folder of one run (not created). Rejects ids that are not plain folder names."""
        return self.layout.run_dir(run_id)

    def inspect(self, run_id: str) -> tuple[dict | None, str | None]:
        """(the trusted result, None), (None, why it is not trusted), or (None, None) when absent.

        Every read goes through :func:`benchmark.store.schema.problem`: an unreadable, truncated,
        foreign or edited file is never returned as a result, and a result reached through a
        symbolic link (``runs/``, the run's folder or the file) is not even read.
        """
        path = self.layout.result_file(run_id)
        why = self.link_problem(path)
        if why is not None:
            return None, why
        if not path.exists():
            return None, None
        data, why = _read_json(path)
        if why is None:
            why = problem(data, run_id)
        return (None, why) if why else (data, None)

    def link_problem(self, path: Path) -> str | None:
        """Why ``path`` (under the root) is not read: a symbolic link on the way or a path resolving
        outside the results folder; None when it is safe."""
        link = first_link(self.root, path)
        if link is not None:
            return f"{link.relative_to(self.root)} is a symbolic link; not read"
        try:
            check_inside(path, self.root)
        except OSError:
            return f"{path.relative_to(self.root)} resolves outside the results folder; not read"
        return None

    def load(self, run_id: str) -> dict | None:
        """The trusted result of ``run_id``, or None when it is absent or not trustworthy."""
        return self.inspect(run_id)[0]

    def is_complete(self, run_id: str) -> bool:
        """True when the run is stored, trusted, and its status is ``complete``."""
        result = self.load(run_id)
        return result is not None and result.get("status") == "complete"

    def claim_folder(self, run_id: str) -> Path:
        """The run's folder, made a real directory inside the root (created when absent); returns it.

        A symbolic link at ``runs/``, at the run's folder or among the run folder's entries is
        removed — the link itself, never what it points to — and real folders take the place of
        the first two, so the run is computed (lock, checkpoint, result) inside the results folder.
        """
        run_dir = real_folder(self.root, self.run_dir(run_id))
        for entry in run_dir.iterdir():
            if entry.is_symlink():
                entry.unlink()
        return run_dir

    def save(self, result: dict) -> Path:
        """Persist ``result`` (must hold ``run_id``) atomically with a checksum of its content;
        returns the path of result.json.

        Never writes through a symbolic link: ``OSError`` when ``runs/`` or the run's folder is one
        (:meth:`claim_folder` replaces them) or resolves outside the results folder.
        """
        if "run_id" not in result:
            raise ValueError("result has no run_id")
        safe = with_checksum(json_safe(result))
        path = self.layout.result_file(safe["run_id"])
        link = first_link(self.root, path.parent)
        if link is not None:
            raise OSError(f"refusing to write {path}: {link} is a symbolic link "
                          "(RunStore.claim_folder replaces it by a real folder)")
        text = json.dumps(safe, indent=2, allow_nan=False) + "\n"
        return atomic_write_text(path, text, inside=self.root)

    def run_ids(self) -> list[str]:
        """Ids of every run folder holding a result.json (trusted or not), and of every run-id-named
        symbolic link in ``runs/`` (never followed), sorted; none when ``runs/`` is itself a link."""
        if self.runs_dir.is_symlink() or not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir() if is_run_id(p.name) and _holds_result(p))

    def problems(self, run_ids: Iterable[str] | None = None) -> list[tuple[Path, str]]:
        """(path, why) of every result.json present but not trusted, all of them or of ``run_ids``
        (a ``runs/`` that is a symbolic link is one problem: nothing under it is read)."""
        if run_ids is None and self.runs_dir.is_symlink():
            return [(self.runs_dir, f"{self.runs_dir.name} is a symbolic link; not read")]
        ids = self.run_ids() if run_ids is None else sorted(set(run_ids))
        found = [(self.layout.result_file(r), self.inspect(r)[1]) for r in ids]
        if run_ids is None and self.runs_dir.is_dir():
            found += [(p / RESULT_FILE, f"{p.name!r} is not a run id")
                      for p in sorted(self.runs_dir.iterdir())
                      if _holds_result(p) and not is_run_id(p.name)]
        return [(path, why) for path, why in found if why]

    def iter_results(self) -> Iterator[dict]:
        """Every trusted result, sorted by run_id (the others are skipped; see :meth:`problems`)."""
        for run_id in self.run_ids():
            result = self.load(run_id)
            if result is not None:
                yield result

    def results(self, run_ids: Iterable[str] | None = None) -> list[dict]:
        """Trusted results, all of them or those of ``run_ids`` (missing ones skipped), by run_id."""
        if run_ids is None:
            return list(self.iter_results())
        loaded = (self.load(r) for r in sorted(set(run_ids)))
        return [r for r in loaded if r is not None]

    def frame(self, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """One row per readable run; see :func:`results_frame` for the columns."""
        return results_frame(self.results(run_ids))


def _holds_result(folder: Path) -> bool:
    """Whether ``folder`` (an entry of ``runs/``) is a symbolic link or holds a result.json file or link."""
    result = folder / RESULT_FILE
    return folder.is_symlink() or (folder.is_dir() and (result.is_file() or result.is_symlink()))


def _read_json(path: Path) -> tuple[Any, str | None]:
    """(parsed JSON, None) or (None, why it cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return None, f"unreadable ({type(err).__name__})"
    if not text.strip():
        return None, "empty"
    try:
        return json.loads(text), None
    except ValueError:
        return None, "not valid JSON (truncated?)"


def _flatten(result: dict) -> tuple[dict, list[str], list[str]]:
    """One frame row from a result dict; also returns its spec and metric column names."""
    row = {key: result.get(key) for key in CORE_COLUMNS}
    failed = result.get("status") != "complete"
    row[FAILURE_COLUMN] = (result.get("failure") or {}).get("reason", "error") if failed else None
    metrics = result.get("metrics") or {}
    taken = set(CORE_COLUMNS) | {FAILURE_COLUMN} | set(METRIC_FIELDS) | set(metrics) | set(ENV_FIELDS)
    spec_cols = []
    for key, value in (result.get("spec") or {}).items():
        column = SPEC_PREFIX + key if key in taken else key
        if key == "method_hparams":
            value = json.dumps(value or {}, sort_keys=True)
        row[column] = value
        spec_cols.append(column)
    for key, value in metrics.items():
        row[key] = value
    environment = result.get("environment") or {}
    for key in ENV_FIELDS:
        row[key] = environment.get(key)
    return row, spec_cols, list(metrics)


def known_spec_columns() -> list[str]:
    """Frame column names of the known spec fields (``epochs`` becomes ``spec_epochs``)."""
    taken = set(CORE_COLUMNS) | set(METRIC_FIELDS) | set(ENV_FIELDS)
    return [SPEC_PREFIX + k if k in taken else k for k in SPEC_FIELDS]


def results_frame(results: Iterable[dict]) -> pd.DataFrame:
    """Flatten result dicts into a DataFrame, one row per run.

    Columns: ``run_id, cell_id, status, error, label, failure_reason``; every spec key
    (``method_hparams`` as a sorted JSON string; a spec key clashing with a metric name gets the
    ``spec_`` prefix, e.g. ``spec_epochs``); every metric key; ``device``. Known spec and metric
    columns are always present (NaN/None where a run lacks them), so an empty store gives an empty
    frame with them.
    ``frame.attrs["spec_columns"]`` / ``["metric_columns"]`` list which columns came from where.
    """
    rows, spec_cols, metric_cols = [], known_spec_columns(), list(METRIC_FIELDS)
    for result in results:
        row, specs, metrics = _flatten(result)
        rows.append(row)
        spec_cols += [c for c in specs if c not in spec_cols]
        metric_cols += [c for c in metrics if c not in metric_cols]
    columns = CORE_COLUMNS + [FAILURE_COLUMN] + spec_cols + metric_cols + ENV_FIELDS
    frame = pd.DataFrame(rows, columns=columns)
    for column in metric_cols + spec_cols:
        frame[column] = _maybe_numeric(frame[column])
    frame.attrs["spec_columns"] = spec_cols
    frame.attrs["metric_columns"] = metric_cols
    return frame


def _maybe_numeric(series: pd.Series) -> pd.Series:
    """Numeric dtype when every non-null value is a (non-bool) number; unchanged otherwise."""
    values = series.dropna()
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        numeric = pd.to_numeric(series, errors="coerce")
        return numeric.astype(float) if values.empty else numeric
    return series
