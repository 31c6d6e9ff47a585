"""ResNets: residual Adds couple the channels of every block output in a stage into one group.

Projection (1x1 conv + BN) shortcuts start a new group where the stride or the width changes; identity
shortcuts chain the block outputs together, which is what makes residual pruning hard.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from edgeprune.zoo._blocks import classifier, conv_bn
from edgeprune.zoo._registry import register_architecture


def shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity when shapes match, else an option-B 1x1 projection (conv + BN)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return conv_bn(in_channels, out_channels, kernel=1, stride=stride, act=None)


class BasicBlock(nn.Module):
    """3x3 -> 3x3 with a residual Add, then ReLU (ResNet-18/20 block)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(in_channels, out_channels, stride=stride),
            conv_bn(out_channels, out_channels, act=None),
        )
        self.shortcut = shortcut(in_channels, out_channels, stride)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (optionally grouped, for ResNeXt) -> 1x1 expand, residual Add, ReLU."""

    def __init__(self, in_channels: int, mid: int, out_channels: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(in_channels, mid, kernel=1),
            conv_bn(mid, mid, stride=stride, groups=groups),
            conv_bn(mid, out_channels, kernel=1, act=None),
        )
        self.shortcut = shortcut(in_channels, out_channels, stride)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """Stem conv -> residual blocks -> global average pool -> Linear."""

    def __init__(
        self, stem: int, blocks: Sequence[nn.Module], out_channels: int, in_channels: int = 3, num_classes: int = 10
    ) -> None:
        super().__init__()
        self.stem = conv_bn(in_channels, stem)
        self.blocks = nn.Sequential(*blocks)
        self.head = classifier(out_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x)))


@register_architecture("resnet_basic", input_shapes=[(3, 32, 32)])
def resnet_basic(num_classes: int = 10) -> nn.Module:
    """Two identity blocks at 16 channels, then a stride-2 block with a projection to 32."""
    blocks = [BasicBlock(16, 16), BasicBlock(16, 16), BasicBlock(16, 32, stride=2), BasicBlock(32, 32)]
    return ResNet(16, blocks, 32, num_classes=num_classes)


@register_architecture("resnet_bottleneck", input_shapes=[(3, 32, 32)])
def resnet_bottleneck(num_classes: int = 10) -> nn.Module:
    """Bottlenecks with a width-changing projection, an identity block and a stride-2 projection."""
    blocks = [Bottleneck(16, 8, 32), Bottleneck(32, 8, 32), Bottleneck(32, 16, 64, stride=2)]
    return ResNet(16, blocks, 64, num_classes=num_classes)


def _resnet20_shapes(in_channels: int = 1, **_: object) -> list[tuple[int, int, int]]:
    return [(in_channels, 28, 28)]


@register_architecture("resnet20", input_shapes=_resnet20_shapes)
def resnet20(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    """CIFAR-style ResNet-20: 3 stages x 3 basic blocks at 16-32-64 channels, option-B shortcuts.

    Defaults to 1x28x28 inputs because it is trained on Fashion-MNIST (28 -> 14 -> 7 through the stages).
    """
    blocks: list[nn.Module] = []
    channels = 16
    for width, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(3):
            blocks.append(BasicBlock(channels, width, stride if i == 0 else 1))
            channels = width
    return ResNet(16, blocks, 64, in_channels=in_channels, num_classes=num_classes)
