"""Scaling benchmarks: a grid run sequentially vs. on packed workers, and the GPU figures.

    python -m benchmark.perf --grid            # sequential vs --workers N wall time (any machine)
    python -m benchmark.perf --gpu             # with CUDA: ResNet-18 epochs and packed-run throughput
    python -m benchmark.perf --procs N         # one run on 1 vs N processes (--procs-per-run)

*Grid*: the same small grid (Fashion-MNIST MLP, the quick preset's methods, 2 epochs) runs twice
into fresh stores: once one run after another with all cores per run (``inline``), once on
``--workers`` processes with cores ÷ workers threads each (``local``); the printed ratio is
packed / sequential wall time (below 1 = packing wins). The two configurations compute with
different thread counts, so their run ids differ by design (see ``RunSpec.threads``).

*GPU* (CUDA only): for ResNet-18 on CIFAR-shaped random data (``random-cifar``), each method's
harness epoch against a bare loop with the same AMP (bf16) and channels_last, as
:func:`benchmark.perf.speed.epoch_ratios` does on a CPU; then the throughput (images/s over all runs)
of 1, 2, 4 and 8 dense runs packed on one GPU as local workers (``--gpus-per-run 1/N``), counted
over the slowest run's training time (start-up excluded).

*Processes per run*: one ``gmp`` run at 90% computed by one process (all cores, or one GPU) and by
N data-parallel processes (cores ÷ N threads each, or one GPU each), the same global batch; the
printed ratio is the median training epoch (the first left out) of N processes over one.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from benchmark.execution.backends import Resources
from benchmark.checks import cpu_cores
from benchmark.execution.executors import execute
from benchmark.engine import train
from benchmark.presets import SEED_METHODS
from benchmark.spec import RunSpec, plan_grid
from benchmark.store.run_store import RunStore

GRID = dict(dataset="fashion-mnist", model="mlp", epochs=2, batch_size=128, lr=0.1, weight_decay=1e-4)


def grid_wall_times(workers: int, methods: list[str] | None = None, sparsities: tuple[float, ...] = (0.9,),
                    seeds: tuple[int, ...] = (0, 1), **overrides) -> dict[str, float]:
    """Wall seconds of one small grid run ``inline`` (all cores per run) and on ``workers`` processes."""
    cores = cpu_cores()
    common = {**GRID, **overrides}
    names = ["dense", *(methods or [m for m in SEED_METHODS if m != "grda"])]  # no calibration search here
    times = {}
    for label, executor, n, threads in [("sequential", "inline", 1, cores),
                                        ("packed", "local", workers, max(1, cores // workers))]:
        specs = plan_grid(names, list(sparsities), list(seeds), {}, **common, threads=threads)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            summary = execute(specs, RunStore(Path(tmp)), executor=executor, show_progress=False,
                              resources=Resources(workers=n))
            times[label] = time.perf_counter() - t0
        if summary.failed:
            raise RuntimeError(f"{summary.failed} runs of the {label} grid failed: {summary.failures}")
        times[f"{label}_runs"] = len(specs)
    return times


def gpu_packing_throughput(counts: tuple[int, ...] = (1, 2, 4, 8), epochs: int = 2,
                           model: str = "resnet18") -> dict[int, float]:
    """Images per second over all runs when ``n`` dense runs share one GPU, for each ``n``."""
    from benchmark.data.registry import load_dataset
    n_train = len(load_dataset("random-cifar").train)
    out = {}
    for n in counts:
        specs = plan_grid(["dense"], [0.0], list(range(n)), {}, dataset="random-cifar", model=model,
                          epochs=epochs, batch_size=128, lr=0.1, eval_every=0, threads=1, device="cuda")
        with tempfile.TemporaryDirectory() as tmp:
            store = RunStore(Path(tmp))
            summary = execute(specs, store, executor="local", show_progress=False,
                              resources=Resources(workers=n, gpus_per_run=1.0 / n))
            if summary.failed:
                raise RuntimeError(f"{summary.failed} packed runs failed: {summary.failures}")
            # the runs train side by side: the slowest one's training time covers them all
            # (process start-up and data generation left out, as in a long grid)
            slowest = max(r["metrics"]["train_time_s"] for r in store.results())
        out[n] = n * epochs * n_train / slowest
    return out


def procs_epoch_times(procs: int, model: str = "lenet5", dataset: str = "fashion-mnist", epochs: int = 3,
                      device: str = "auto", batch_size: int = 128) -> dict[int, float]:
    """Median training seconds per epoch (the first left out) of one gmp run on 1 and on ``procs``
    processes; on a CPU the cores are shared out (cores ÷ processes threads each)."""
    cores = cpu_cores()
    out = {}
    for n in (1, procs):
        spec = RunSpec(dataset=dataset, model=model, method="gmp", target_sparsity=0.9, epochs=epochs,
                       batch_size=batch_size, eval_every=0, device=device, procs_per_run=n,
                       threads=max(1, cores // n))
        history = train.run(spec)["history"]
        out[n] = statistics.median(h["epoch_time_s"] for h in history[1:])
    return out
