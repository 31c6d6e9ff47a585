"""A YOLOX-style detector: CSPDarknet backbone, PAFPN neck, decoupled head with one output per scale.

What it exercises: SiLU everywhere (no ReLU to refine a refit for), CSP blocks (two 1x1 convs read one input,
their outputs are concatenated after a chain of residual bottlenecks), an SPP block (max pools of one map
concatenated), a neck that upsamples and concatenates across scales in both directions, and a head whose
classification, box and objectness branches split from one stem per scale. Like YOLOX (Ge et al. 2021):
``width`` and ``depth`` scale the channels and the bottleneck counts (YOLOX-Tiny is 0.375 and 0.33); the
defaults are small, for the test corpus, and ``size`` sets the square input (416 for a real detector).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgeprune.zoo._blocks import conv_bn
from edgeprune.zoo._registry import register_architecture


def conv(in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1) -> nn.Sequential:
    """Conv -> BN -> SiLU, YOLOX's BaseConv."""
    return conv_bn(in_channels, out_channels, kernel=kernel, stride=stride, act=nn.SiLU)


class Bottleneck(nn.Module):
    """1x1 -> 3x3, with a residual Add when ``shortcut``."""

    def __init__(self, channels: int, shortcut: bool = True) -> None:
        super().__init__()
        self.conv1, self.conv2 = conv(channels, channels, 1), conv(channels, channels, 3)
        self.shortcut = shortcut

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.shortcut else y


class CSPLayer(nn.Module):
    """Two 1x1 convs of one input; bottlenecks on the first; both concatenated, then a 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, blocks: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        hidden = out_channels // 2
        self.conv1, self.conv2 = conv(in_channels, hidden), conv(in_channels, hidden)
        self.blocks = nn.Sequential(*(Bottleneck(hidden, shortcut) for _ in range(blocks)))
        self.conv3 = conv(2 * hidden, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv3(torch.cat([self.blocks(self.conv1(x)), self.conv2(x)], dim=1))


class SPPBottleneck(nn.Module):
    """1x1 conv, max pools of 5, 9 and 13 concatenated with their input, 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = conv(in_channels, hidden)
        self.pools = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in (5, 9, 13))
        self.conv2 = conv(hidden * 4, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [pool(x) for pool in self.pools], dim=1))


class Focus(nn.Module):
    """Space to depth by slicing (each 2x2 block's four pixels become channels), then a conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = conv(in_channels * 4, out_channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        parts = [x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]]
        return self.conv(torch.cat(parts, dim=1))


class CSPDarknet(nn.Module):
    def __init__(self, base: int, depth: int) -> None:
        super().__init__()
        self.stem = Focus(3, base)
        self.dark2 = nn.Sequential(conv(base, base * 2, 3, 2), CSPLayer(base * 2, base * 2, depth))
        self.dark3 = nn.Sequential(conv(base * 2, base * 4, 3, 2), CSPLayer(base * 4, base * 4, depth * 3))
        self.dark4 = nn.Sequential(conv(base * 4, base * 8, 3, 2), CSPLayer(base * 8, base * 8, depth * 3))
        self.dark5 = nn.Sequential(
            conv(base * 8, base * 16, 3, 2),
            SPPBottleneck(base * 16, base * 16),
            CSPLayer(base * 16, base * 16, depth, shortcut=False),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.dark2(self.stem(x))
        c3 = self.dark3(x)
        c4 = self.dark4(c3)
        return c3, c4, self.dark5(c4)


class PAFPN(nn.Module):
    """Top-down (upsample, concatenate) then bottom-up (strided conv, concatenate) over three scales."""

    def __init__(self, c3: int, c4: int, c5: int, depth: int) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral = conv(c5, c4)
        self.top4 = CSPLayer(2 * c4, c4, depth, shortcut=False)
        self.reduce = conv(c4, c3)
        self.top3 = CSPLayer(2 * c3, c3, depth, shortcut=False)
        self.down3 = conv(c3, c3, 3, 2)
        self.bottom4 = CSPLayer(2 * c3, c4, depth, shortcut=False)
        self.down4 = conv(c4, c4, 3, 2)
        self.bottom5 = CSPLayer(2 * c4, c5, depth, shortcut=False)

    def forward(self, features: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        x3, x4, x5 = features
        lateral = self.lateral(x5)
        top4 = self.top4(torch.cat([self.up(lateral), x4], dim=1))
        reduced = self.reduce(top4)
        out3 = self.top3(torch.cat([self.up(reduced), x3], dim=1))
        out4 = self.bottom4(torch.cat([self.down3(out3), reduced], dim=1))
        out5 = self.bottom5(torch.cat([self.down4(out4), lateral], dim=1))
        return out3, out4, out5


class DecoupledHead(nn.Module):
    """Per scale: a 1x1 stem, then a classification and a regression branch (two 3x3 convs each); boxes and
    objectness from the regression branch. One output per scale: (box, objectness, classes) on axis 1."""

    def __init__(self, in_channels: tuple[int, ...], hidden: int, num_classes: int) -> None:
        super().__init__()
        self.stems = nn.ModuleList(conv(c, hidden) for c in in_channels)
        self.cls = nn.ModuleList(nn.Sequential(conv(hidden, hidden, 3), conv(hidden, hidden, 3)) for _ in in_channels)
        self.reg = nn.ModuleList(nn.Sequential(conv(hidden, hidden, 3), conv(hidden, hidden, 3)) for _ in in_channels)
        self.cls_pred = nn.ModuleList(nn.Conv2d(hidden, num_classes, 1) for _ in in_channels)
        self.reg_pred = nn.ModuleList(nn.Conv2d(hidden, 4, 1) for _ in in_channels)
        self.obj_pred = nn.ModuleList(nn.Conv2d(hidden, 1, 1) for _ in in_channels)

    def forward(self, features: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        outputs = []
        for i, x in enumerate(features):
            x = self.stems[i](x)
            classes = self.cls_pred[i](self.cls[i](x))
            box = self.reg[i](x)
            outputs.append(torch.cat([self.reg_pred[i](box), self.obj_pred[i](box).sigmoid(), classes.sigmoid()], 1))
        return tuple(outputs)


class YOLOX(nn.Module):
    def __init__(self, width: float = 0.125, depth: float = 0.33, num_classes: int = 2) -> None:
        super().__init__()
        base, blocks = max(int(64 * width), 4), max(round(depth * 3), 1)
        self.backbone = CSPDarknet(base, blocks)
        self.neck = PAFPN(base * 4, base * 8, base * 16, blocks)
        self.head = DecoupledHead((base * 4, base * 8, base * 16), max(int(256 * width), 8), num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return self.head(self.neck(self.backbone(x)))


def _yolox_shapes(size: int = 64, **_: object) -> list[tuple[int, int, int]]:
    return [(3, size, size)]


@register_architecture("yolox", input_shapes=_yolox_shapes)
def yolox(width: float = 0.125, depth: float = 0.33, num_classes: int = 2, size: int = 64) -> nn.Module:
    """YOLOX-style detector; ``size`` (a multiple of 32) only sets the example input, the model takes any."""
    if size % 32:
        raise ValueError(f"size {size} is not a multiple of 32 (the deepest scale is 1/32 of the input)")
    return YOLOX(width, depth, num_classes)
