"""``python -m benchmark.perf [--grid] [--gpu] …``: the speed benchmark of :mod:`benchmark.perf.speed`."""
from __future__ import annotations

from benchmark.perf.speed import main

if __name__ == "__main__":
    raise SystemExit(main())
