"""``python -m benchmark.report RESULTS_DIR``: rebuild the reports of a results folder from its store."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from benchmark.report.writer import NoRunsError, write_reports
from benchmark.store.run_store import RunStore


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: rebuild the reports of a results folder from every run in its store."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.report", description=main.__doc__)
    parser.add_argument("results_dir", type=Path, help="results folder (holds runs/<run_id>/result.json)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the reports (default: results_dir)")
    parser.add_argument("--sparsity-tolerance", type=float, default=0.01,
                        help="flag cells whose measured sparsity misses the target by more (default 0.01)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.add_argument("--reference", default=None,
                        help="method every cell is compared with, paired by seed (default: gmp if present, "
                        "else magnitude, else dense)")
    args = parser.parse_args(argv)
    store = RunStore(args.results_dir)
    skipped = store.problems()
    for path, why in skipped:
        print(f"warning: skipped {path}: {why}", file=sys.stderr)
    try:
        paths = write_reports(store, args.out or args.results_dir,
                              sparsity_tolerance=args.sparsity_tolerance, plots=not args.no_plots,
                              reference=args.reference)
    except NoRunsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(paths.table)
    print(f"wrote {paths.csv}, {paths.markdown}, {paths.latex}" + "".join(f", {p}" for p in paths.plots))
    if skipped:
        print(f"skipped {len(skipped)} result file(s) that cannot be trusted (see the warnings above)",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
