"""Executing a grid: the driver, its backends (inline, local processes, Ray, SLURM), run locks, safe runs."""
