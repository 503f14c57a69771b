"""LeNet-5 convolutional network.

LeCun, Bottou, Bengio & Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 1998. Deviations from the paper, as in the common modern
variant: max-pooling instead of trainable subsampling, a full C3 connection table,
a plain linear output layer instead of RBF units, and a selectable activation.
The first conv uses padding 2 so a 28x28 input behaves like the paper's 32x32 one.
Convs keep their biases (there is no BatchNorm).
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from models.activations import make_activation


def _flat_features(h: int, w: int) -> int:
    """Spatial size after conv(5, pad 2) -> pool 2 -> conv(5) -> pool 2, times 16 channels."""
    def side(s: int) -> int:
        return (s // 2 - 4) // 2

    fh, fw = side(h), side(w)
    if fh < 1 or fw < 1:
        raise ValueError(f"lenet5 needs inputs of at least 12x12, got {h}x{w}")
    return 16 * fh * fw


class LeNet5(nn.Module):
    """Conv(C,6,5,p2)-act-pool-Conv(6,16,5)-act-pool-FC120-act-FC84-act-FC(classes)."""

    def __init__(self, in_shape: Tuple[int, int, int], num_classes: int, activation: str = "relu") -> None:
        super().__init__()
        c, h, w = in_shape
        flat = _flat_features(h, w)
        self.conv1 = nn.Conv2d(c, 6, kernel_size=5, padding=2)
        self.act1 = make_activation(activation)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.act2 = make_activation(activation)
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(flat, 120)
        self.act3 = make_activation(activation)
        self.fc2 = nn.Linear(120, 84)
        self.act4 = make_activation(activation)
        self.classifier = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.act1(self.conv1(x)))
        x = self.pool2(self.act2(self.conv2(x)))
        x = self.act3(self.fc1(self.flatten(x)))
        x = self.act4(self.fc2(x))
        return self.classifier(x)
