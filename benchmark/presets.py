"""Named grid presets: defaults for the CLI that explicit flags override.

A preset sets the grid (methods, sparsities, seeds) and any of ``RunSpec``'s settings; a setting
it leaves out takes ``RunSpec``'s declared default (:mod:`benchmark.spec`).

``quick`` (the default) is sized for 2 CPU cores and real Fashion-MNIST in under 5 minutes: the
seed methods at three sparsities (80, 90, 95%), so every method draws a curve, 3 seeds (so tables
and figures show t-intervals, not ranges), 4 epochs, gRDA's calibration probes included, on one
worker per core (``make bench``). Three sparsities at the former 6 epochs would take about 2.7× the
former single-sparsity grid, over 5 minutes on a slow day; 4 epochs is the trade (the README says
what it costs in accuracy). The CIFAR presets are GPU presets: on a CPU one ResNet-18 epoch alone
takes about 11 minutes. The research-scale presets (``imagenet-resnet50``, ``tinyimagenet-resnet18``)
stream an image folder from disk (``--dataset folder:<path>`` says where; the README gives their
GPU-hours and the papers' published numbers).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    values: dict[str, Any] = field(default_factory=dict)


#: What a new user sees first: every seed method of the suite (DNR-Pruning, GraNet, gRDA, AP riding
#: on gmp beside gmp itself) and the magnitude family's one-shot reference; dense is added to
#: every grid as the accuracy ceiling.
SEED_METHODS = ["magnitude", "gmp", "gmp+ap", "granet", "dnr", "grda"]

_CIFAR_TRAINING = {"batch_size": 128, "lr": 0.1, "momentum": 0.9, "nesterov": True,
                   "weight_decay": 5e-4, "lr_schedule": "cosine"}

#: The ResNet-50 ImageNet recipe of GraNet's and RigL's ImageNet runs (batch 256, lr 0.1 with 5 warm-up
#: epochs, momentum 0.9, weight decay 1e-4), with a cosine decay shared by every method.
_IMAGENET_TRAINING = {"batch_size": 256, "lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4,
                      "lr_schedule": "cosine", "warmup_epochs": 5}

#: The research-scale recipes stream an image folder (``--dataset folder:<path>`` says where).
_IMAGENET_RESNET50 = {
    "dataset": "folder:data/imagenet", "model": "tv:resnet50", "image_size": 224, "data_workers": 8,
    "methods": SEED_METHODS, "sparsities": [0.8, 0.9], "seeds": [0], "epochs": 100, **_IMAGENET_TRAINING}
_TINYIMAGENET_RESNET18 = {
    "dataset": "folder:data/tiny-imagenet-200", "model": "tv:resnet18", "image_size": 64, "data_workers": 8,
    "methods": SEED_METHODS, "sparsities": [0.8, 0.9, 0.95], "seeds": [0, 1, 2], "epochs": 200,
    "batch_size": 256, "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
    "lr_schedule": "cosine"}

PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("quick", "CPU, ≤5 min: seed methods, LeNet-300-100/Fashion-MNIST, 80-95%, 4 epochs, 3 seeds", {
        "dataset": "fashion-mnist", "model": "mlp", "methods": SEED_METHODS,
        "sparsities": [0.8, 0.9, 0.95], "seeds": [0, 1, 2], "epochs": 4, "batch_size": 128,
        "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "lr_schedule": "cosine"}),
    Preset("lenet5", "CPU, ~1 h: the seed methods on LeNet-5, Fashion-MNIST, 10 epochs, 2 seeds", {
        "dataset": "fashion-mnist", "model": "lenet5", "methods": SEED_METHODS,
        "sparsities": [0.9, 0.95, 0.98], "seeds": [0, 1], "epochs": 10,
        "batch_size": 128, "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "lr_schedule": "cosine"}),
    Preset("cifar10-resnet20", "GPU: ResNet-20 on CIFAR-10, 160 epochs, 3 seeds", {
        "dataset": "cifar10", "model": "resnet20", "methods": SEED_METHODS,
        "sparsities": [0.5, 0.8, 0.9, 0.95], "seeds": [0, 1, 2], "epochs": 160, **_CIFAR_TRAINING}),
    Preset("cifar10-resnet56", "GPU: ResNet-56 on CIFAR-10, 160 epochs, 3 seeds", {
        "dataset": "cifar10", "model": "resnet56", "methods": SEED_METHODS,
        "sparsities": [0.5, 0.8, 0.9, 0.95], "seeds": [0, 1, 2], "epochs": 160, **_CIFAR_TRAINING}),
    Preset("cifar10-vgg16", "GPU: VGG-16 (BN) on CIFAR-10, 160 epochs, 3 seeds", {
        "dataset": "cifar10", "model": "vgg16", "methods": SEED_METHODS,
        "sparsities": [0.9, 0.95, 0.98], "seeds": [0, 1, 2], "epochs": 160, **_CIFAR_TRAINING}),
    Preset("cifar100-resnet18", "GPU: ResNet-18 on CIFAR-100, 160 epochs, 3 seeds", {
        "dataset": "cifar100", "model": "resnet18", "methods": SEED_METHODS,
        "sparsities": [0.9, 0.95, 0.98], "seeds": [0, 1, 2], "epochs": 160, **_CIFAR_TRAINING}),
    Preset("imagenet-resnet50", "GPU cluster: torchvision ResNet-50, ImageNet folder, 100 epochs, 80/90%",
           _IMAGENET_RESNET50),
    Preset("tinyimagenet-resnet18", "GPU: torchvision ResNet-18, CIFAR stem, Tiny-ImageNet folder, 200 ep.",
           _TINYIMAGENET_RESNET18),
]}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from: {', '.join(PRESETS)}") from None
