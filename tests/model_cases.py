"""What the model tests share: the registry's models, their expected sizes, and cheap builders."""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import nn

from models import ACTIVATION_TYPES, get_model

MODELS = ["lenet5", "mlp", "resnet18", "resnet20", "resnet56", "vgg16"]
GRAY = (1, 28, 28)
RGB = (3, 32, 32)
# Per model: (number of activation modules, total hidden units = sum of their channel / feature counts).
ACTIVATION_SITES: Dict[str, Tuple[int, int]] = {
    "mlp": (2, 300 + 100),
    "lenet5": (4, 6 + 16 + 120 + 84),
    "resnet20": (19, 16 + 6 * (16 + 32 + 64)),
    "resnet56": (55, 16 + 18 * (16 + 32 + 64)),
    "resnet18": (17, 64 + 4 * (64 + 128 + 256 + 512)),
    "vgg16": (13, 2 * 64 + 2 * 128 + 3 * 256 + 6 * 512),
}
# Per model: (number of Conv2d, number of Linear).
PRUNABLE_COUNTS: Dict[str, Tuple[int, int]] = {
    "mlp": (0, 3),
    "lenet5": (2, 3),
    "resnet20": (19, 1),   # stem + 18; option-A shortcuts add no convs
    "resnet56": (55, 1),
    "resnet18": (20, 1),   # stem + 16 + three 1x1 projection shortcuts
    "vgg16": (13, 1),
}
ACTIVATION_CLASSES = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "swish": nn.SiLU}
ALL_ACTIVATION_LIKE = (nn.ReLU, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.ELU, nn.ReLU6, nn.Tanh, nn.Sigmoid,
                       nn.Hardswish, nn.PReLU)


def build(name: str, in_shape: Tuple[int, int, int] = RGB, num_classes: int = 10,
          activation: str = "relu", seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return get_model(name, in_shape, num_classes, activation)


_CACHE: Dict[Tuple[str, Tuple[int, int, int], str], nn.Module] = {}


def shared(name: str, activation: str = "relu") -> nn.Module:
    """Seed-0 model on :func:`small_shape`, built once per module for structural tests."""
    key = (name, small_shape(name), activation)
    if key not in _CACHE:
        _CACHE[key] = build(name, small_shape(name), activation=activation)
    return _CACHE[key]


def one_thread_then_clear_cache():
    """Body of each model test module's autouse fixture: a single intra-op thread (batches here
    are tiny, and on a busy 2-core machine OpenMP spin-waiting made the tests ~4x slower); the
    thread count is restored and the model cache freed afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
    _CACHE.clear()


def small_shape(name: str) -> Tuple[int, int, int]:
    """Cheap input shape for the two big models, the CIFAR shape for the others."""
    return (3, 16, 16) if name in ("resnet18", "vgg16") else RGB


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def activations(model: nn.Module) -> List[nn.Module]:
    return [m for m in model.modules() if isinstance(m, ACTIVATION_TYPES)]


def prunable(model: nn.Module) -> List[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def width(layer: nn.Module) -> int:
    return layer.out_channels if isinstance(layer, nn.Conv2d) else layer.out_features
