"""Classifier heads and multi-input/multi-output graphs: the couplings at the end of a CNN.

``flatten_gemm_head`` flattens an 8x8 map straight into a Linear, so conv channel c owns the Linear's input
rows c*64 .. c*64+63; ``gap_gemm_head`` pools first, so channel c owns row c. ``two_in_two_out`` checks that
a graph with several inputs and outputs is handled as a whole.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgeprune.zoo._blocks import classifier, conv_bn
from edgeprune.zoo._registry import register_architecture


class FlattenGemmHead(nn.Module):
    """conv 8 -> pool -> conv 16 -> pool -> flatten(1) -> Linear, no global pooling."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(conv_bn(in_channels, 8), nn.MaxPool2d(2), conv_bn(8, 16), nn.MaxPool2d(2))
        self.fc = nn.Linear(16 * 8 * 8, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


class GapGemmHead(nn.Module):
    """conv 8 -> conv 16 (stride 2) -> conv 32 -> global average pool -> Linear."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(conv_bn(in_channels, 8), conv_bn(8, 16, stride=2), conv_bn(16, 32))
        self.head = classifier(32, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class TwoInTwoOut(nn.Module):
    """An RGB and a depth image, one stem each, fused by concat; a class score and a dense map out."""

    def __init__(self, num_classes: int = 10, map_channels: int = 4) -> None:
        super().__init__()
        self.rgb_stem = conv_bn(3, 16)
        self.depth_stem = conv_bn(1, 8)
        self.trunk = nn.Sequential(conv_bn(24, 32), conv_bn(32, 32, stride=2))
        self.classify = classifier(32, num_classes)
        self.dense = nn.Conv2d(32, map_channels, 1)

    def forward(self, rgb: Tensor, depth: Tensor) -> tuple[Tensor, Tensor]:
        fused = torch.cat([self.rgb_stem(rgb), self.depth_stem(depth)], dim=1)
        features = self.trunk(fused)
        return self.classify(features), self.dense(features)


@register_architecture("flatten_gemm_head", input_shapes=[(3, 32, 32)])
def flatten_gemm_head(num_classes: int = 10) -> nn.Module:
    """Flatten of a 16x8x8 map straight into a Linear."""
    return FlattenGemmHead(num_classes=num_classes)


@register_architecture("gap_gemm_head", input_shapes=[(3, 32, 32)])
def gap_gemm_head(num_classes: int = 10) -> nn.Module:
    """Global average pooling of a 32-channel map into a Linear."""
    return GapGemmHead(num_classes=num_classes)


@register_architecture("two_in_two_out", input_shapes=[(3, 32, 32), (1, 32, 32)])
def two_in_two_out(num_classes: int = 10, map_channels: int = 4) -> nn.Module:
    """Inputs: RGB 3x32x32 and depth 1x32x32; outputs: N x classes and N x map_channels x 16 x 16."""
    return TwoInTwoOut(num_classes=num_classes, map_channels=map_channels)
