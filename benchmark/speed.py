"""Speed check: the harness against a bare PyTorch loop, and its data path against DataLoader.

    python -m benchmark.speed [--models mlp lenet5] [--epochs 3] [--device auto]

For each model on Fashion-MNIST it prints the median training-epoch time of every registered
method run through the harness (``train.run``: method hooks, mask application, dynamic
dead-neuron counting, per-step LR) divided by the median epoch time of the bare loop below (same
model, batch size, optimizer, data already on the same device). Then the time to iterate one
epoch of batches with the harness (``train_batches``) against torchvision's ``DataLoader`` over
``torchvision.datasets.FashionMNIST`` with ``ToTensor`` + ``Normalize``. Ratios, not absolute
times, are the point: the machines are noisy, so each figure is a median over epochs.
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
from benchmark import train
from benchmark.data import load_dataset, train_batches
from benchmark.spec import RunSpec
from models import get_model

SPARSITY = 0.9


def bare_epoch_times(model_name: str, epochs: int, batch_size: int, device: torch.device) -> list[float]:
    """Epoch times of a minimal loop: randperm, index, forward, loss, backward, SGD step."""
    data = load_dataset("fashion-mnist").to(device)
    x_all, y_all = data.train.x, data.train.y
    torch.manual_seed(0)
    model = get_model(model_name, data.in_shape, data.num_classes).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    times = []
    for epoch in range(epochs):
        gen = torch.Generator().manual_seed(epoch)
        order = torch.randperm(len(y_all), generator=gen).to(device)
        _sync(device)
        t0 = time.perf_counter()
        model.train()
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def harness_epoch_times(model_name: str, method: str, epochs: int, batch_size: int,
                        device: str) -> list[float]:
    target = 0.0 if method == "dense" else SPARSITY
    hparams = {"prune_fraction": 0.6} if method == "imp" else {}  # imp: 3 rounds at s = 0.9
    per_budget_epoch = methods.get_method(method, target, **hparams).plan(1).total_epochs
    spec = RunSpec(model=model_name, method=method, target_sparsity=target, method_hparams=hparams,
                   epochs=max(1, epochs // per_budget_epoch), batch_size=batch_size,
                   lr=0.05, weight_decay=1e-4, device=device, eval_every=0)
    result = train.run(spec)
    return [h["epoch_time_s"] for h in result["history"]]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_after_warmup(times: list[float]) -> float:
    return statistics.median(times[1:] if len(times) > 1 else times)


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
        for _ in range(epochs):
            _sync(device)
            t0 = time.perf_counter()
            for x, y in loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            _sync(device)
            loader_times.append(time.perf_counter() - t0)
    return _median_after_warmup(harness), _median_after_warmup(loader_times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.speed", description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["mlp", "lenet5"])
    p.add_argument("--methods", nargs="+", default=methods.available_methods())
    p.add_argument("--epochs", type=int, default=4, help="epochs per measurement (the first is warm-up)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    device = train.resolve_device(args.device)
    print(f"device {device} ({train.environment(device, train.Precision(device, False))['device_name']}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"Fashion-MNIST train set; dynamic dead-neuron counting on; median of epochs 2..{args.epochs}")
    print(f"{'model':8} {'method':10} {'epoch s':>8} {'bare s':>8} {'ratio':>6}")
    for model_name in args.models:
        bare = _median_after_warmup(bare_epoch_times(model_name, args.epochs, args.batch_size, device))
        for method in args.methods:
            t = _median_after_warmup(harness_epoch_times(model_name, method, args.epochs,
                                                         args.batch_size, str(device)))
            print(f"{model_name:8} {method:10} {t:8.3f} {bare:8.3f} {t / bare:6.3f}")
    harness, loader = data_path_times(args.batch_size, device, args.epochs)
    print(f"data path, one epoch of batches: harness {harness:.4f} s, DataLoader+ToTensor {loader:.3f} s, "
          f"ratio {harness / loader:.4f} ({loader / harness:.0f}x faster)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
