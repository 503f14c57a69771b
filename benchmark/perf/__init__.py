"""Performance benchmarks: harness overhead against a bare loop, data path, grid packing."""
