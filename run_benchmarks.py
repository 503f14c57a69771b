#!/usr/bin/env python3
"""prunebench: compare pruning methods at equal model, data, budget and seeds.

    python run_benchmarks.py --methods magnitude gmp random --sparsities 0.5 0.8 0.9 --seeds 0 1 2
    python run_benchmarks.py --list
"""
import sys

from benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
