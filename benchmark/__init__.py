"""prunebench: a benchmark suite for neural-network pruning methods."""
