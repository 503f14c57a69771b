"""Model registry: one table mapping a name to its builder and a one-line description.

:func:`get_model` is the single entry point the harness uses. It validates the
arguments, builds the architecture and applies the common initialisation
(:func:`init_weights`), so a ``torch.manual_seed`` call right before ``get_model``
fully determines the weights.
"""
from __future__ import annotations

import operator
from typing import Callable, Dict, List, Sequence, Tuple

from torch import nn

from models.activations import check_activation
from models.external import build_external, is_external
from models.lenet import LeNet5
from models.mlp import MLP
from models.resnet_cifar import resnet18, resnet20, resnet56
from models.vgg import vgg16

Builder = Callable[[Tuple[int, int, int], int, str], nn.Module]

_REGISTRY: Dict[str, Tuple[Builder, str]] = {
    "mlp": (MLP, "LeNet-300-100 fully connected net (LeCun et al. 1998)"),
    "lenet5": (LeNet5, "LeNet-5: 2 conv + 3 FC layers, max-pool (LeCun et al. 1998)"),
    "resnet20": (resnet20, "CIFAR ResNet-20, option-A shortcuts, ~0.27M params (He et al. 2016)"),
    "resnet56": (resnet56, "CIFAR ResNet-56, option-A shortcuts, ~0.85M params (He et al. 2016)"),
    "resnet18": (resnet18, "CIFAR ResNet-18, 3x3 stem, projection shortcuts, ~11.2M params (He et al. 2016)"),
    "vgg16": (vgg16, "VGG-16-BN, GAP + one linear layer, ~14.7M params (Simonyan & Zisserman 2015)"),
}


def register_model(name: str, builder: Builder, description: str) -> None:
    """Add a network: ``builder(in_shape, num_classes, activation) -> nn.Module`` under ``name``.

    The builder follows the conventions of :mod:`models` (one activation module per site, the last
    ``nn.Linear`` as the classifier); :func:`get_model` validates the arguments and initialises the
    weights as for the built-ins. A plugin calls this when imported (:mod:`benchmark.plugins`).
    Raises ``ValueError`` for an empty name or one taken by another builder.
    """
    if not name or not isinstance(name, str):
        raise ValueError("a model needs a non-empty name")
    if name in _REGISTRY and _REGISTRY[name][0] is not builder:
        raise ValueError(f"model name {name!r} is already registered")
    _REGISTRY[name] = (builder, description)


def available_models() -> List[str]:
    """Return the sorted list of registered model names."""
    return sorted(_REGISTRY)


def model_descriptions() -> Dict[str, str]:
    """Return ``{name: one-line description}`` for every registered model, sorted by name."""
    return {name: _REGISTRY[name][1] for name in available_models()}


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU gain) conv weights with zero biases; BatchNorm weight 1, bias 0.

    Linear layers keep PyTorch's default initialisation.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def _as_int(value: object) -> int:
    """Accept Python/NumPy/torch integers (anything with ``__index__``), reject bools and floats."""
    if isinstance(value, bool):
        raise TypeError("bool is not a size")
    return operator.index(value)  # type: ignore[arg-type]


def _check_in_shape(in_shape: Sequence[int]) -> Tuple[int, int, int]:
    try:
        shape = tuple(_as_int(s) for s in in_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"in_shape must be three positive ints (C, H, W), got {in_shape!r}")
    return shape  # type: ignore[return-value]


def _check_num_classes(num_classes: int) -> int:
    try:
        value = _as_int(num_classes)
    except TypeError:
        value = 0
    if value < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    return value


def get_model(name: str, in_shape: Sequence[int], num_classes: int,
              activation: str = "relu") -> nn.Module:
    """Build model ``name`` for inputs of shape ``in_shape`` = (C, H, W) and ``num_classes`` outputs.

    ``name`` is a registered model or an external one (:mod:`models.external`: ``tv:<name>``,
    ``timm:<name>``, ``package.module:builder``), which keeps its own initialisation. Raises
    ``ValueError`` for an unknown model or activation name (listing the valid choices), a
    malformed ``in_shape``, ``num_classes < 2``, or an external network that cannot be built.
    """
    external = name not in _REGISTRY and is_external(name)
    if name not in _REGISTRY and not external:
        raise ValueError(f"unknown model {name!r}; choose from: {', '.join(available_models())}, or "
                         "tv:<torchvision name>, timm:<timm name>, package.module:builder")
    check_activation(activation)
    shape = _check_in_shape(in_shape)
    classes = _check_num_classes(num_classes)
    if external:  # the library's (or the user's) own initialisation; see models.external
        return build_external(name, shape, classes, activation)
    builder = _REGISTRY[name][0]
    model = builder(shape, classes, activation)
    init_weights(model)
    return model
