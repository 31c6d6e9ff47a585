"""DenseNet: every layer's output is concatenated to its input, so channels pass through Concat offsets.

The layers are pre-activation (BN -> ReLU -> Conv): the BatchNorms sit after a Concat, not after a Conv, so
the exporters cannot fold them and they stay as BatchNormalization nodes, as in real DenseNet exports.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgeprune.zoo._registry import register_architecture


def bn_relu_conv(in_channels: int, out_channels: int, kernel: int) -> nn.Sequential:
    """Pre-activation unit: BN -> ReLU -> Conv."""
    return nn.Sequential(
        nn.BatchNorm2d(in_channels),
        nn.ReLU(),
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
    )


class DenseLayer(nn.Module):
    """1x1 bottleneck -> 3x3 producing ``growth`` new channels, appended to the input by concat."""

    def __init__(self, in_channels: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(bn_relu_conv(in_channels, 2 * growth, 1), bn_relu_conv(2 * growth, growth, 3))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.body(x)], dim=1)


class Transition(nn.Module):
    """BN -> ReLU -> 1x1 conv halving the channels -> 2x2 average pool."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(bn_relu_conv(in_channels, out_channels, 1), nn.AvgPool2d(2))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class DenseNet(nn.Module):
    """Stem conv -> dense block -> transition -> dense block -> BN-ReLU -> GAP -> Linear."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, stem: int = 16, growth: int = 8) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, stem, 3, padding=1, bias=False)]
        channels = stem
        for n_layers, transition in ((3, True), (2, False)):
            for _ in range(n_layers):
                layers.append(DenseLayer(channels, growth))
                channels += growth
            if transition:
                layers.append(Transition(channels, channels // 2))
                channels //= 2
        layers += [nn.BatchNorm2d(channels), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@register_architecture("densenet", input_shapes=[(3, 32, 32)])
def densenet(num_classes: int = 10) -> nn.Module:
    """Growth rate 8: 16 -> 40 channels, transition to 20, then 36."""
    return DenseNet(num_classes=num_classes)
