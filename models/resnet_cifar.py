"""CIFAR-style residual networks.

He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.

* ``resnet20`` / ``resnet56`` follow Sec. 4.2 of the paper exactly: a 3x3 conv with 16
  filters, three stages of n basic blocks (n = 3 / 9) with 16/32/64 filters and strides
  1/2/2, global average pooling and one linear layer. Shortcuts are **option A**
  (identity; when the shape changes, stride-2 spatial subsampling plus zero-padding of
  the extra channels), so they add no parameters.
* ``resnet18`` is the widely used CIFAR adaptation of the ImageNet ResNet-18 (Sec. 4.1):
  the 7x7 stride-2 stem and the max-pool are replaced by one 3x3 stride-1 conv with 64
  filters; stages [2, 2, 2, 2] with 64/128/256/512 filters and strides 1/2/2/2; shortcuts
  are **option B** (1x1 conv + BN projection only where the shape changes).

Global average pooling is adaptive, so any input height/width works.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from models.activations import make_activation


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (it is always followed by BatchNorm)."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


class PadShortcut(nn.Module):
    """Parameter-free option-A shortcut: subsample by ``stride`` and zero-pad channels.

    The zeros are split evenly before/after the existing channels and are created by
    ``F.pad``, so they follow the input's device and dtype (safe under autocast).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        if out_ch < in_ch:
            raise ValueError("option-A shortcut cannot reduce the number of channels")
        self.stride = stride
        self.pad_front = (out_ch - in_ch) // 2
        self.pad_back = out_ch - in_ch - self.pad_front

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_front, self.pad_back))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad=({self.pad_front}, {self.pad_back})"


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a shortcut: act2(bn2(conv2(act1(bn1(conv1 x)))) + shortcut(x)).

    ``act1`` and ``act2`` are separate module instances; ``act2`` sees the post-addition
    output. Module registration order is conv1, bn1, act1, conv2, bn2, shortcut, act2.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, activation: str, shortcut: str) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch, stride)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.act1 = make_activation(activation)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        if stride == 1 and in_ch == out_ch:
            self.shortcut: nn.Module = nn.Identity()
        elif shortcut == "A":
            self.shortcut = PadShortcut(in_ch, out_ch, stride)
        elif shortcut == "B":
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_ch),
            )
        else:
            raise ValueError(f"unknown shortcut option {shortcut!r}; choose from: A, B")
        self.act2 = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem conv3x3-BN-act, stages of :class:`BasicBlock`, global average pool, linear classifier."""

    def __init__(self, in_shape: Tuple[int, int, int], num_classes: int, activation: str,
                 blocks: Sequence[int], widths: Sequence[int], strides: Sequence[int],
                 shortcut: str) -> None:
        super().__init__()
        if not len(blocks) == len(widths) == len(strides):
            raise ValueError("blocks, widths and strides must have the same length")
        in_ch = widths[0]
        self.conv1 = conv3x3(in_shape[0], in_ch)
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.act1 = make_activation(activation)
        stages = []
        for n, width, stride in zip(blocks, widths, strides):
            layers = []
            for i in range(n):
                layers.append(BasicBlock(in_ch, width, stride if i == 0 else 1, activation, shortcut))
                in_ch = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.stages(x)
        return self.classifier(self.flatten(self.pool(x)))


def resnet_cifar(depth: int, in_shape: Tuple[int, int, int], num_classes: int,
                 activation: str = "relu") -> CifarResNet:
    """He et al. 2016 CIFAR ResNet of depth 6n+2 (option-A shortcuts, widths 16/32/64)."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1, got {depth}")
    n = (depth - 2) // 6
    return CifarResNet(in_shape, num_classes, activation, blocks=(n, n, n), widths=(16, 32, 64),
                       strides=(1, 2, 2), shortcut="A")


def resnet20(in_shape: Tuple[int, int, int], num_classes: int, activation: str = "relu") -> CifarResNet:
    """ResNet-20 (n = 3), about 0.27M parameters for 10 classes."""
    return resnet_cifar(20, in_shape, num_classes, activation)


def resnet56(in_shape: Tuple[int, int, int], num_classes: int, activation: str = "relu") -> CifarResNet:
    """ResNet-56 (n = 9), about 0.85M parameters for 10 classes."""
    return resnet_cifar(56, in_shape, num_classes, activation)


def resnet18(in_shape: Tuple[int, int, int], num_classes: int, activation: str = "relu") -> CifarResNet:
    """CIFAR ResNet-18: 3x3 stem, no max-pool, [2, 2, 2, 2] blocks, projection shortcuts (11.17M)."""
    return CifarResNet(in_shape, num_classes, activation, blocks=(2, 2, 2, 2), widths=(64, 128, 256, 512),
                       strides=(1, 2, 2, 2), shortcut="B")
