"""MobileNetV2: inverted residuals with depthwise 3x3 convs and ReLU6.

The depthwise conv ties its input and output channels one to one, so the expand conv, the depthwise conv
and the project conv's input form a single group; the residual Add joins block outputs as in ResNet.
"""

from __future__ import annotations

from torch import Tensor, nn

from edgeprune.zoo._blocks import classifier, conv_bn
from edgeprune.zoo._registry import register_architecture


class InvertedResidual(nn.Module):
    """1x1 expand (skipped when ``expand == 1``) -> 3x3 depthwise -> 1x1 linear project (+ residual)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = in_channels * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn(in_channels, hidden, kernel=1, act=nn.ReLU6))
        layers.append(conv_bn(hidden, hidden, stride=stride, groups=hidden, act=nn.ReLU6))
        layers.append(conv_bn(hidden, out_channels, kernel=1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(x)
        return x + out if self.residual else out


class MobileNetV2(nn.Module):
    """Stem -> inverted residual blocks -> 1x1 conv -> global average pool -> Linear."""

    # (out_channels, stride, expand) per block, 32x32 -> 8x8.
    LAYOUT = ((16, 1, 1), (24, 2, 4), (24, 1, 4), (32, 2, 4), (32, 1, 4))

    def __init__(self, in_channels: int = 3, num_classes: int = 10, last: int = 64) -> None:
        super().__init__()
        self.stem = conv_bn(in_channels, 16, act=nn.ReLU6)
        blocks: list[nn.Module] = []
        channels = 16
        for out_channels, stride, expand in self.LAYOUT:
            blocks.append(InvertedResidual(channels, out_channels, stride, expand))
            channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.last = conv_bn(channels, last, kernel=1, act=nn.ReLU6)
        self.head = classifier(last, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.last(self.blocks(self.stem(x))))


def _mobilenet_v2_shapes(in_channels: int = 3, **_: object) -> list[tuple[int, int, int]]:
    return [(in_channels, 32, 32)]


@register_architecture("mobilenet_v2", input_shapes=_mobilenet_v2_shapes)
def mobilenet_v2(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """A five-block MobileNetV2 at 16-32 channels (expand ratio 4).

    Global average pooling makes it size-agnostic: 1x28x28 Fashion-MNIST images (``in_channels=1``) go
    28 -> 14 -> 7 through the two stride-2 blocks.
    """
    return MobileNetV2(in_channels=in_channels, num_classes=num_classes)
