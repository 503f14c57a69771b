"""LeNet-300-100 multilayer perceptron.

LeCun, Bottou, Bengio & Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 1998 (the 300-100 fully connected baseline), as popularised
as a pruning benchmark by Han et al. 2015. The original used sigmoid/tanh units; here
the hidden activation is selectable.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from models.activations import make_activation


class MLP(nn.Module):
    """Flatten -> Linear(C*H*W, 300) -> act -> Linear(300, 100) -> act -> Linear(100, classes)."""

    def __init__(self, in_shape: Tuple[int, int, int], num_classes: int, activation: str = "relu",
                 hidden: Tuple[int, int] = (300, 100)) -> None:
        super().__init__()
        c, h, w = in_shape
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(c * h * w, hidden[0])
        self.act1 = make_activation(activation)
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.act2 = make_activation(activation)
        self.classifier = nn.Linear(hidden[1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.fc1(self.flatten(x)))
        x = self.act2(self.fc2(x))
        return self.classifier(x)
