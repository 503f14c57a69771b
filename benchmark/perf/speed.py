"""Speed check: the harness against a bare PyTorch loop, and its data path against DataLoader.

    python -m benchmark.perf [--models mlp lenet5] [--epochs 6] [--device auto]

For each model on Fashion-MNIST and every registered method, the harness (``train.run``: method
hooks, prune events, mask application, dynamic dead-neuron counting, per-step LR) trains while,
after each of its epochs, the bare loop below trains one epoch of the same model (same batch
size, optimizer, data already on the same device). Interleaving epoch by epoch means both see
the same machine load; the printed ratio is the median over epochs of harness/bare epoch time,
the first epoch being a warm-up. Then the time to iterate one epoch of batches with the harness
(``train_batches``) against torchvision's ``DataLoader`` over ``torchvision.datasets.FashionMNIST``
with ``ToTensor`` + ``Normalize``. Ratios, not absolute times, are the point: the machines are
noisy. With ``grda`` among the methods, the GRDA optimizer's step time is also compared with
``torch.optim.SGD``'s on the same model and gradients.
"""
from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import methods
from benchmark.engine import train
from benchmark.data.batching import train_batches
from benchmark.data.registry import load_dataset
from benchmark.engine.device import Precision, environment, resolve_device, uses_channels_last
from benchmark.spec import RunSpec
from models import get_model

SPARSITY = 0.9


class BareLoop:
    """A minimal training loop: randperm, index, forward, loss, backward, SGD step.

    On CUDA it does what a careful user would do by hand, so the comparison is fair: bf16
    autocast and, for conv nets, channels_last.
    """

    def __init__(self, model_name: str, batch_size: int, device: torch.device,
                 dataset: str = "fashion-mnist"):
        data = load_dataset(dataset).to(device)
        self.x, self.y = data.train.x, data.train.y
        torch.manual_seed(0)
        self.model = get_model(model_name, data.in_shape, data.num_classes).to(device)
        self.channels_last = uses_channels_last(self.model, device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
        self.autocast = Precision(device, enabled=True).autocast
        self.batch_size, self.device, self.epochs = batch_size, device, 0

    def epoch(self) -> float:
        """Train one epoch; returns its wall time in seconds."""
        order = torch.randperm(len(self.y), generator=torch.Generator().manual_seed(self.epochs))
        order = order.to(self.device)
        self.epochs += 1
        _sync(self.device)
        t0 = time.perf_counter()
        self.model.train()
        for i in range(0, len(order), self.batch_size):
            idx = order[i:i + self.batch_size]
            x = self.x[idx]
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self.autocast():
                loss = F.cross_entropy(self.model(x), self.y[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        _sync(self.device)
        return time.perf_counter() - t0


def timing_spec(model_name: str, method: str, epochs: int, batch_size: int, device: torch.device,
                dataset: str = "fashion-mnist") -> RunSpec:
    """The harness run that :func:`epoch_ratios` times: ``method`` at :data:`SPARSITY`, this process's
    thread count (so harness and bare loop compute alike), no per-epoch evaluation."""
    target = 0.0 if method == "dense" else SPARSITY
    hparams = {"prune_fraction": 0.6} if method.split("+")[0] == "imp" else {}  # imp: 3 rounds at s = 0.9
    calibration = methods.get_method_class(method).calibration
    if calibration is not None:  # time one run at the search's first value (not the search itself)
        hparams[calibration.hparam] = calibration.first_value
    per_budget_epoch = methods.get_method(method, target, **hparams).plan(1).total_epochs
    return RunSpec(dataset=dataset, model=model_name, method=method, target_sparsity=target,
                   method_hparams=hparams, epochs=max(1, epochs // per_budget_epoch), batch_size=batch_size,
                   lr=0.05, weight_decay=1e-4, device=str(device), eval_every=0,
                   threads=torch.get_num_threads())


def epoch_ratios(model_name: str, method: str, epochs: int, batch_size: int, device: torch.device,
                 dataset: str = "fashion-mnist") -> tuple[float, float, float]:
    """(median harness epoch s, median bare epoch s, median per-epoch ratio), warm-up excluded."""
    spec = timing_spec(model_name, method, epochs, batch_size, device, dataset)
    bare = BareLoop(model_name, batch_size, device, dataset)
    bare_times: list[float] = []

    def after_epoch(done: float, total: int) -> None:  # one bare epoch after each harness epoch
        if done == int(done):  # (reports inside an epoch are fractional)
            bare_times.append(bare.epoch())
    result = train.run(spec, progress=after_epoch)
    harness_times = [h["epoch_time_s"] for h in result["history"]]
    pairs = list(zip(harness_times, bare_times))[1:] or list(zip(harness_times, bare_times))
    return (statistics.median(h for h, _ in pairs), statistics.median(b for _, b in pairs),
            statistics.median(h / b for h, b in pairs))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def data_path_times(batch_size: int, device: torch.device, epochs: int) -> tuple[float, float]:
    """Median epoch time of iterating batches: harness vs torchvision DataLoader + ToTensor."""
    data = load_dataset("fashion-mnist")
    split = data.to(device).train
    harness = []
    for epoch in range(epochs):
        _sync(device)
        t0 = time.perf_counter()
        for x, y in train_batches(split, batch_size, seed=0, epoch=epoch):
            pass
        _sync(device)
        harness.append(time.perf_counter() - t0)
    loader_times = []
    with tempfile.TemporaryDirectory() as tmp:
        import torchvision
        from torchvision import transforms
        raw = Path(tmp) / "FashionMNIST" / "raw"
        raw.mkdir(parents=True)
        for gz in Path(data.source).glob("*.gz"):
            with gzip.open(gz) as src, open(raw / gz.stem, "wb") as dst:
                shutil.copyfileobj(src, dst)
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))])
        ds = torchvision.datasets.FashionMNIST(tmp, train=True, transform=tf, download=False)
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True,
                                             pin_memory=device.type == "cuda")
        for _ in range(min(epochs, 3)):
            _sync(device)
            t0 = time.perf_counter()
            for x, y in loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            _sync(device)
            loader_times.append(time.perf_counter() - t0)
    return statistics.median(harness[1:]), statistics.median(loader_times[1:])


def optimizer_step_times(model_name: str, device: torch.device, rounds: int = 30,
                         steps: int = 20) -> dict[str, float]:
    """Median seconds of one ``optimizer.step()`` on ``model_name``'s parameters, fixed gradients.

    ``grda``: the GRDA optimizer as the method builds it, thresholding at the calibration's first
    c (so the soft threshold runs); ``sgd``: ``torch.optim.SGD`` as the grid uses it (momentum 0.9,
    weight decay 1e-4); ``sgd_plain``: without momentum or weight decay (what gRDA reduces to at
    c = 0). Steps of the three are interleaved round by round so they share the machine's load.
    """
    data = load_dataset("fashion-mnist").to(device)
    x, y = data.train.x[:128], data.train.y[:128]
    config = methods.OptimizerConfig(lr=0.05, momentum=0.9, weight_decay=1e-4)
    c = methods.get_method_class("grda").calibration.first_value
    makers = {
        "grda": lambda m: methods.get_method("grda", c=c).make_optimizer(m, config),
        "sgd": lambda m: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4),
        "sgd_plain": lambda m: torch.optim.SGD(m.parameters(), lr=0.05),
    }
    optimizers = {}
    for name, make in makers.items():
        torch.manual_seed(0)
        model = get_model(model_name, data.in_shape, data.num_classes).to(device)
        F.cross_entropy(model(x), y).backward()
        optimizers[name] = make(model)
        optimizers[name].step()  # lazy state (momentum buffers, accumulators) outside the timing
    times: dict[str, list[float]] = {name: [] for name in optimizers}
    for _ in range(rounds):
        for name, opt in optimizers.items():
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                opt.step()
            _sync(device)
            times[name].append((time.perf_counter() - t0) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.perf", description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["mlp", "lenet5"])
    p.add_argument("--methods", nargs="+", default=[*methods.method_descriptions(), "gmp+ap"],
                   help="methods to time (default: every registered method, and gmp+ap for the modifier)")
    p.add_argument("--epochs", type=int, default=6, help="epochs per measurement (the first is warm-up)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--grid", action="store_true",
                   help="only time a small grid sequentially vs on --workers processes")
    p.add_argument("--workers", type=int, default=2, help="worker processes for --grid (default 2)")
    p.add_argument("--procs", type=int, default=None, metavar="N",
                   help="only time one run (the last of --models) on 1 vs N processes (--procs-per-run)")
    p.add_argument("--gpu", action="store_true",
                   help="only the CUDA figures: ResNet-18 epochs per method and packed-run throughput")
    args = p.parse_args(argv)
    if args.grid:
        return _grid_report(args.workers)
    if args.procs is not None:
        return _procs_report(args.procs, args.models[-1], args.device, args.batch_size)
    device = resolve_device(args.device)
    if args.gpu:
        return _gpu_report(args.methods, args.epochs, args.batch_size, device)
    print(f"device {device} ({environment(device, Precision(device, False))['device_name']}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"Fashion-MNIST; dead-neuron counting on; sparse methods at {SPARSITY:.0%}; "
          f"medians over epochs 2..{args.epochs}, each harness epoch paired with a bare one")
    print(f"{'model':8} {'method':10} {'harness s':>9} {'bare s':>8} {'ratio':>6}")
    for model_name in args.models:
        for method in args.methods:
            h, b, ratio = epoch_ratios(model_name, method, args.epochs, args.batch_size, device)
            print(f"{model_name:8} {method:10} {h:9.3f} {b:8.3f} {ratio:6.3f}", flush=True)
    if "grda" in args.methods:
        for model_name in args.models:
            t = optimizer_step_times(model_name, device)
            print(f"optimizer step, {model_name}: GRDA {1e3 * t['grda']:.3f} ms; SGD as the grid uses it "
                  f"(momentum, weight decay) {1e3 * t['sgd']:.3f} ms, ratio {t['grda'] / t['sgd']:.2f}; "
                  f"plain SGD {1e3 * t['sgd_plain']:.3f} ms, ratio {t['grda'] / t['sgd_plain']:.2f}",
                  flush=True)
    harness, loader = data_path_times(args.batch_size, device, max(3, args.epochs))
    print(f"data path, one epoch of batches: harness {harness:.4f} s, DataLoader+ToTensor {loader:.3f} s, "
          f"ratio {harness / loader:.4f} ({loader / harness:.0f}x faster)")
    return 0


def _grid_report(workers: int) -> int:
    from benchmark.perf.scale import grid_wall_times
    t = grid_wall_times(workers)
    ratio = t["packed"] / t["sequential"]
    print(f"grid of {t['sequential_runs']} runs (Fashion-MNIST MLP, 2 epochs): one after another "
          f"{t['sequential']:.1f} s; {workers} workers {t['packed']:.1f} s; ratio {ratio:.2f} "
          f"({1 / ratio:.2f}x the throughput)")
    return 0


def _procs_report(procs: int, model: str, device: str, batch_size: int) -> int:
    from benchmark.perf.scale import procs_epoch_times
    t = procs_epoch_times(procs, model=model, device=device, batch_size=batch_size)
    print(f"{model} on Fashion-MNIST, gmp 90%, batch {batch_size} ({device}): one process {t[1]:.2f} s per "
          f"epoch; {procs} processes {t[procs]:.2f} s; ratio {t[procs] / t[1]:.2f} "
          f"({t[1] / t[procs]:.2f}x the speed)")
    return 0


def _gpu_report(method_names: list[str], epochs: int, batch_size: int, device: torch.device) -> int:
    if device.type != "cuda":
        print("no CUDA device: the GPU figures need a GPU")
        return 2
    from benchmark.perf.scale import gpu_packing_throughput
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, ResNet-18 on random-cifar, "
          f"batch {batch_size}, bf16 autocast, channels_last; harness vs a bare AMP loop")
    print(f"{'method':14} {'harness s':>9} {'bare s':>8} {'ratio':>6}")
    for method in method_names:
        h, b, ratio = epoch_ratios("resnet18", method, epochs, batch_size, device, dataset="random-cifar")
        print(f"{method:14} {h:9.3f} {b:8.3f} {ratio:6.3f}", flush=True)
    for n, rate in gpu_packing_throughput().items():
        print(f"{n} run(s) packed on one GPU: {rate:,.0f} images/s in all", flush=True)
    return 0
