"""ShuffleNetV2: channel split, two branches, concat and channel shuffle.

The shuffle (view -> transpose -> view) permutes channels across the concat halves; an analyzer that treats
it as elementwise prunes the wrong channels, so this topology checks that the permutation is understood (or
the group frozen).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgeprune.zoo._blocks import classifier, conv_bn
from edgeprune.zoo._registry import register_architecture


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channels of ``groups`` equal slices: view(N, g, C/g, H, W) -> transpose -> view."""
    n, c, h, w = x.shape
    x = x.view(n, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(n, c, h, w)


def branch(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """1x1 -> 3x3 depthwise (no activation) -> 1x1, the main branch of a ShuffleNetV2 unit."""
    return nn.Sequential(
        conv_bn(in_channels, out_channels, kernel=1),
        conv_bn(out_channels, out_channels, stride=stride, groups=out_channels, act=None),
        conv_bn(out_channels, out_channels, kernel=1),
    )


class ShuffleUnit(nn.Module):
    """Stride 1: split the channels in half, transform one half, concat, shuffle."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.branch = branch(channels // 2, channels // 2, stride=1)

    def forward(self, x: Tensor) -> Tensor:
        kept, transformed = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat([kept, self.branch(transformed)], dim=1), 2)


class ShuffleDownUnit(nn.Module):
    """Stride 2: both branches see the whole input; the concat doubles the channels, then shuffle."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        half = out_channels // 2
        self.left = nn.Sequential(
            conv_bn(in_channels, in_channels, stride=2, groups=in_channels, act=None),
            conv_bn(in_channels, half, kernel=1),
        )
        self.right = branch(in_channels, half, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return channel_shuffle(torch.cat([self.left(x), self.right(x)], dim=1), 2)


class ShuffleNetV2(nn.Module):
    """Stem -> one stride-2 unit -> stride-1 units -> 1x1 conv -> global average pool -> Linear."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 48, last: int = 64) -> None:
        super().__init__()
        self.stem = conv_bn(in_channels, 24)
        self.units = nn.Sequential(ShuffleDownUnit(24, width), ShuffleUnit(width), ShuffleUnit(width))
        self.last = conv_bn(width, last, kernel=1)
        self.head = classifier(last, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.last(self.units(self.stem(x))))


@register_architecture("shufflenet", input_shapes=[(3, 32, 32)])
def shufflenet(num_classes: int = 10) -> nn.Module:
    """Three ShuffleNetV2 units at 48 channels."""
    return ShuffleNetV2(num_classes=num_classes)
