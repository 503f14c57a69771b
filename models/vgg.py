"""VGG-16 with BatchNorm for small images.

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (configuration D), with BatchNorm after every conv (Ioffe &
Szegedy 2015) and the CIFAR-style head: the three large FC layers are replaced by
global average pooling and a single Linear(512, num_classes).

Small-input rule: a 2x2 max-pool from the configuration is only inserted while both
spatial sides are still >= 2 at that point (computed from ``in_shape`` when the model
is built). On 32x32 inputs all five pools are kept (32 -> 1); on 28x28 inputs the
fifth pool is skipped (28 -> 14 -> 7 -> 3 -> 1) and the last conv block runs at 1x1.
The model is therefore built for one input size; feeding a much smaller one than
``in_shape`` can fail.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple, Union

import torch
from torch import nn

from models.activations import make_activation

VGG16_CFG: Tuple[Union[int, str], ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)


class VGG(nn.Module):
    """Stack of conv3x3-BN-act layers and max-pools, global average pool, linear classifier."""

    def __init__(self, in_shape: Tuple[int, int, int], num_classes: int, activation: str = "relu",
                 cfg: Sequence[Union[int, str]] = VGG16_CFG) -> None:
        super().__init__()
        in_ch, h, w = in_shape
        layers: List[nn.Module] = []
        for item in cfg:
            if item == "M":
                if h >= 2 and w >= 2:
                    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                    h, w = h // 2, w // 2
                continue
            out_ch = int(item)
            layers += [
                nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out_ch),
                make_activation(activation),
            ]
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


def vgg16(in_shape: Tuple[int, int, int], num_classes: int, activation: str = "relu") -> VGG:
    """VGG-16-BN (configuration D) with a single linear classifier, about 14.7M parameters."""
    return VGG(in_shape, num_classes, activation, VGG16_CFG)
