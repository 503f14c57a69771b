"""Several results folders (runs made on several machines) read as one set of runs.

What a report shows of a folder besides its runs — the command lines that made them and the
calibration searches they used — comes with it (:class:`FolderRecords`), so a merged report
still says where every number came from.

**Merge rule.** Runs are keyed by run id (the hash of the run's semantic spec, so one id is one
experiment wherever it ran). The same run id in several folders:

* with identical content (equal checksums; the store verifies every checksum on read) is one run,
  counted once — a folder copied to another machine and merged back adds nothing;
* with different content (the run was computed twice, or failed on one machine and finished on
  another) is a :class:`Conflict`: a complete result wins over a failed one; between two of the
  same status, the one from the folder listed first wins. The rule is deterministic and the
  user controls it by the order of the folders; every conflict is reported (both paths).

Only trusted results are read (see :mod:`benchmark.store.schema`); the merged list is sorted by
run id, as one folder's :meth:`~benchmark.store.run_store.RunStore.results` is, so merging two
folders gives the same leaderboard as one folder holding both sets of runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from benchmark.store.commands import read_commands
from benchmark.store.files import json_objects
from benchmark.store.layout import ResultsLayout
from benchmark.store.run_store import RunStore
from benchmark.store.schema import CHECKSUM_KEY

#: Why a conflict was resolved as it was.
COMPLETE_WINS = "a complete result wins over a failed one"
FIRST_WINS = "the folder listed first wins"
#: Keys of a calibration record kept for reports (its probes are summarised, their results dropped).
CALIBRATION_KEYS = ("key", "hparam", "target", "tolerance", "seed", "value", "sparsity", "stop",
                    "within_tolerance")


@dataclass(frozen=True)
class FolderRecords:
    """One results folder as a report sees it: how many trusted runs were read from it, the recorded
    command lines (:mod:`benchmark.store.commands`) and its calibration searches."""

    root: Path
    runs: int
    commands: list[dict[str, Any]] = field(default_factory=list)
    calibrations: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Conflict:
    """Two different results for one run id: the one kept and the one left out, with why."""

    run_id: str
    kept: Path
    dropped: Path
    why: str

    def message(self) -> str:
        """One line for stderr."""
        return (f"run {self.run_id} has two different results, {self.kept} and {self.dropped}; "
                f"using {self.kept} ({self.why})")


@dataclass
class Merged:
    """The runs of several folders: results by run id, each folder's records, the conflicts met and
    how many identical copies were counted once."""

    results: list[dict[str, Any]]
    folders: list[FolderRecords]
    conflicts: list[Conflict]
    duplicates: int


def read_calibrations(root: str | Path) -> list[dict[str, Any]]:
    """A summary of every readable calibration search of ``root`` (``calibration/<key>.json``), by key:
    :data:`CALIBRATION_KEYS`, plus ``method``, ``dataset``, ``model``, ``method_hparams`` from its
    recipe, ``probes`` (how many), ``probe_epochs`` and ``probe_time_s`` (what they cost) and ``file``.
    Symbolic links are not followed; unreadable files are skipped."""
    found = []
    for path, data in json_objects(ResultsLayout(Path(root)).calibration_dir):
        if not isinstance(data.get("probes"), list):
            continue
        recipe = data.get("recipe") if isinstance(data.get("recipe"), dict) else {}
        probes = [p for p in data["probes"] if isinstance(p, dict)]
        found.append({**{k: data.get(k) for k in CALIBRATION_KEYS},
                      **{k: recipe.get(k) for k in ("method", "dataset", "model", "method_hparams")},
                      "probes": len(probes),
                      "probe_epochs": sum(p.get("epochs") or 0 for p in probes if "shared_from" not in p),
                      "probe_time_s": sum(p.get("time_s") or 0.0 for p in probes if "shared_from" not in p),
                      "file": str(path)})
    return found


def folder_records(root: str | Path, runs: int) -> FolderRecords:
    """The records of one folder whose report holds ``runs`` of its runs."""
    return FolderRecords(Path(root), runs, read_commands(root), read_calibrations(root))


def merge_stores(stores: Sequence[RunStore]) -> Merged:
    """The trusted runs of ``stores`` merged by run id (see the module's rule), with their records."""
    chosen: dict[str, tuple[dict[str, Any], Path]] = {}
    conflicts: list[Conflict] = []
    duplicates = 0
    folders = []
    for store in stores:
        results = store.results()
        folders.append(folder_records(store.root, len(results)))
        for result in results:
            run_id, path = result["run_id"], store.layout.result_file(result["run_id"])
            if run_id not in chosen:
                chosen[run_id] = (result, path)
                continue
            kept, kept_path = chosen[run_id]
            if kept.get(CHECKSUM_KEY) == result.get(CHECKSUM_KEY):
                duplicates += 1
            elif kept.get("status") != "complete" and result.get("status") == "complete":
                chosen[run_id] = (result, path)
                conflicts.append(Conflict(run_id, path, kept_path, COMPLETE_WINS))
            else:
                only_kept_complete = kept.get("status") == "complete" and result.get("status") != "complete"
                why = COMPLETE_WINS if only_kept_complete else FIRST_WINS
                conflicts.append(Conflict(run_id, kept_path, path, why))
    results = [chosen[run_id][0] for run_id in sorted(chosen)]
    return Merged(results, folders, conflicts, duplicates)
