"""MobileNetV3: inverted residuals with squeeze-and-excitation, Hardswish and one SiLU block.

Squeeze-and-excitation multiplies the feature map by per-channel gates computed from it
(GAP -> 1x1 -> ReLU -> 1x1 -> Hardsigmoid -> Mul): the gate's channels and the map's channels are one group,
and the SE's own hidden 1x1 is a second, independent prunable group.
"""

from __future__ import annotations

from torch import Tensor, nn

from edgeprune.zoo._blocks import classifier, conv_bn
from edgeprune.zoo._registry import register_architecture


class SqueezeExcite(nn.Module):
    """Channel attention: x * hardsigmoid(W2 relu(W1 gap(x)))."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, squeeze, 1),
            nn.ReLU(),
            nn.Conv2d(squeeze, channels, 1),
            nn.Hardsigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


class V3Block(nn.Module):
    """1x1 expand -> kxk depthwise -> optional SE -> 1x1 project, residual when shapes allow."""

    def __init__(
        self, in_channels: int, hidden: int, out_channels: int, kernel: int, stride: int, se: bool, act: type[nn.Module]
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            conv_bn(in_channels, hidden, kernel=1, act=act),
            conv_bn(hidden, hidden, kernel=kernel, stride=stride, groups=hidden, act=act),
        ]
        if se:
            layers.append(SqueezeExcite(hidden, max(8, hidden // 4)))
        layers.append(conv_bn(hidden, out_channels, kernel=1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(x)
        return x + out if self.residual else out


class MobileNetV3(nn.Module):
    """Hardswish stem -> V3 blocks -> 1x1 conv -> global average pool -> Linear."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = conv_bn(in_channels, 16, stride=2, act=nn.Hardswish)
        self.blocks = nn.Sequential(
            V3Block(16, 32, 16, kernel=3, stride=1, se=True, act=nn.ReLU),
            V3Block(16, 48, 24, kernel=5, stride=2, se=False, act=nn.Hardswish),
            V3Block(24, 64, 24, kernel=3, stride=1, se=True, act=nn.Hardswish),
            V3Block(24, 64, 32, kernel=3, stride=1, se=True, act=nn.SiLU),
        )
        self.last = conv_bn(32, 64, kernel=1, act=nn.Hardswish)
        self.head = classifier(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.last(self.blocks(self.stem(x))))


@register_architecture("mobilenet_v3", input_shapes=[(3, 32, 32)])
def mobilenet_v3(num_classes: int = 10) -> nn.Module:
    """A four-block MobileNetV3-small-like model at 16-64 channels."""
    return MobileNetV3(num_classes=num_classes)
