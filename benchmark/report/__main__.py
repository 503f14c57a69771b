"""``python -m benchmark.report DIR [DIR ...] [--out DIR] [--reference M]``: rebuild the reports of a
results folder from its store, or merge several folders (runs made on several machines) into one
leaderboard and report.

With one folder the reports go to ``--out`` (default: the folder itself). With several, ``--out``
is required and must not be one of them: a folder's report files describe the runs in its own
``runs/``, and a merged report written there would silently describe runs it does not hold. Runs
are merged by run id (:mod:`benchmark.store.merge`): identical copies count once; two different
results for one run id are a conflict, warned about on stderr with both paths — a complete result
wins over a failed one, otherwise the folder listed first wins. Bad input (a folder that does not
exist or holds no trusted run, a missing ``--out``, an unknown ``--reference``) is one line on
stderr and exit code 2, before anything is written.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Sequence

from benchmark.report.writer import write_report_files
from benchmark.store.merge import Merged, merge_stores
from benchmark.store.run_store import RunStore


class UsageError(ValueError):
    """Bad input: one line on stderr, exit code 2, nothing written."""


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmark.report``."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.report", description=main.__doc__)
    parser.add_argument("results_dirs", type=Path, nargs="+", metavar="DIR",
                        help="results folder (holds runs/<run_id>/result.json); several are merged")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the reports (default: the results folder; required when "
                        "merging)")
    parser.add_argument("--sparsity-tolerance", type=float, default=0.01,
                        help="flag cells whose measured sparsity misses the target by more (default 0.01)")
    parser.add_argument("--no-plots", action="store_true", help="skip the figures")
    parser.add_argument("--reference", default=None,
                        help="method every cell is compared with, paired by seed (default: gmp if present, "
                        "else magnitude, else dense)")
    return parser


def output_folder(dirs: Sequence[Path], out: Path | None) -> Path:
    """Where the reports go; :class:`UsageError` when the folders or ``out`` cannot be used."""
    for folder in dirs:
        if not folder.exists():
            raise UsageError(f"{folder}: no such results folder")
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a folder")
    if len(dirs) > 1 and out is None:
        raise UsageError(f"merging {len(dirs)} results folders needs --out DIR (a folder of its own for the "
                         "merged report)")
    if len(dirs) > 1 and any(out.resolve() == d.resolve() for d in dirs):
        raise UsageError(f"--out {out} is one of the folders being merged; give the merged report a folder "
                         "of its own")
    target = out if out is not None else dirs[0]
    if target.exists() and not target.is_dir():
        raise UsageError(f"--out {target} is not a folder")
    return target


def read_folders(dirs: Sequence[Path]) -> tuple[Merged, int]:
    """The merged trusted runs of ``dirs`` and how many result files were skipped (each warned about
    on stderr); :class:`UsageError` when a folder holds no trusted run."""
    stores = [RunStore(d) for d in dirs]
    skipped = 0
    for store in stores:
        for path, why in store.problems():
            print(f"warning: skipped {path}: {why}", file=sys.stderr)
            skipped += 1
    merged = merge_stores(stores)
    for store, folder in zip(stores, merged.folders):
        if folder.runs == 0:
            raise UsageError(f"no runs found in {store.runs_dir}")
    return merged, skipped


def check_reference(reference: str | None, results: Sequence[dict[str, Any]]) -> None:
    """:class:`UsageError` when ``reference`` names no method of the runs."""
    labels = sorted({str(r.get("label")) for r in results if r.get("label")})
    if reference is not None and reference not in labels:
        raise UsageError(f"--reference {reference!r} is not a method of these runs ({', '.join(labels)})")


def main(argv: Sequence[str] | None = None) -> int:
    """Rebuild the reports of a results folder from every trusted run in its store, or merge the runs
    of several folders into one leaderboard and report (``--out`` required)."""
    args = build_parser().parse_args(argv)
    try:
        if not (math.isfinite(args.sparsity_tolerance) and args.sparsity_tolerance >= 0):
            raise UsageError(f"--sparsity-tolerance must be a number ≥ 0, got {args.sparsity_tolerance}")
        out = output_folder(args.results_dirs, args.out)
        merged, skipped = read_folders(args.results_dirs)
        check_reference(args.reference, merged.results)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for conflict in merged.conflicts:
        print(f"warning: {conflict.message()}", file=sys.stderr)
    try:
        paths = write_report_files(merged.results, out, merged.folders, merged.conflicts, merged.duplicates,
                                   sparsity_tolerance=args.sparsity_tolerance, plots=not args.no_plots,
                                   reference=args.reference)
    except OSError as err:
        print(f"error: cannot write the reports in {out}: {err.strerror or err}", file=sys.stderr)
        return 1
    print(paths.pivot)
    print()
    if len(args.results_dirs) > 1:
        copies, conflicts = merged.duplicates, len(merged.conflicts)
        print(f"merged {len(merged.results)} runs from {len(args.results_dirs)} folders ({copies} identical "
              f"cop{'y' if copies == 1 else 'ies'} counted once, "
              f"{conflicts} conflict{'' if conflicts == 1 else 's'})")
    print(paths.written())
    if skipped:
        print(f"skipped {skipped} result file(s) that cannot be trusted (see the warnings above)",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
