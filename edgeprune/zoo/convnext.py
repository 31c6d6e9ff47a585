"""ConvNeXt: depthwise 7x7 conv, then a channels-last MLP (LayerNorm, Linear C->4C, GELU, Linear 4C->C,
layer scale), back to channels-first and added to the residual stream.

The LayerNorms normalise over the channels of the residual stream, so that stream can lose no channel; the
4C hidden dimension of every block is its own prunable group and holds most of the MACs. The Linears act
on the last axis of an N,H,W,C map, so both exporters write them as MatMul + Add with stored weights.

Three LayerNorm forms appear, as in real exports: the stem's written out over axis 1 (ReduceMean, Sub,
Pow, Sqrt, Div, as the ConvNeXt reference code does for channels-first maps), the downsampling one as
``nn.LayerNorm`` between two permutes, and the blocks' ``nn.LayerNorm`` on the channels-last map (one
LayerNormalization op from opset 17 on). GELU is the exact (Erf) form in stage 1 and the tanh approximation in
stage 2. The downsampling conv carries a BatchNorm (folded by both exporters), so the model also checks
the fold as every zoo model does.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgeprune.zoo._blocks import LayerScale
from edgeprune.zoo._registry import register_architecture


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an N,C,H,W map, written out step by step."""

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        variance = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(variance + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class ChannelsLastNorm(nn.Module):
    """``nn.LayerNorm`` applied to an N,C,H,W map through permutes (timm's LayerNorm2d)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """dwconv 7x7 -> permute to N,H,W,C -> LayerNorm -> Linear C->4C -> GELU -> Linear 4C->C -> layer scale
    -> permute back -> + x."""

    def __init__(self, channels: int, gelu: str = "none") -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.fc1 = nn.Linear(channels, 4 * channels)
        self.act = nn.GELU(approximate=gelu)
        self.fc2 = nn.Linear(4 * channels, channels)
        self.scale = LayerScale(channels)

    def forward(self, x: Tensor) -> Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.scale(self.fc2(self.act(self.fc1(self.norm(y)))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    """Patchify stem (4x4 stride 4) -> stage 1 -> downsample (LayerNorm, 2x2 stride 2 conv) -> stage 2 ->
    global average pool -> LayerNorm -> Linear."""

    def __init__(
        self,
        in_channels: int = 3,
        dims: tuple[int, int] = (16, 32),
        depths: tuple[int, int] = (2, 1),
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        first, second = dims
        self.stem = nn.Sequential(nn.Conv2d(in_channels, first, 4, stride=4), LayerNorm2d(first, eps=1e-6))
        self.stage1 = nn.Sequential(*(ConvNeXtBlock(first) for _ in range(depths[0])))
        self.downsample = nn.Sequential(
            ChannelsLastNorm(first), nn.Conv2d(first, second, 2, stride=2, bias=False), nn.BatchNorm2d(second)
        )
        self.stage2 = nn.Sequential(*(ConvNeXtBlock(second, gelu="tanh") for _ in range(depths[1])))
        self.norm = nn.LayerNorm(second, eps=1e-6)
        self.head = nn.Linear(second, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stage2(self.downsample(self.stage1(self.stem(x))))
        return self.head(self.norm(x.mean((2, 3))))


@register_architecture("convnext", input_shapes=[(3, 32, 32)])
def convnext(num_classes: int = 10) -> nn.Module:
    """A two-stage ConvNeXt at 16 and 32 channels (hidden 64 and 128): two blocks at 8x8, one at 4x4."""
    return ConvNeXt(num_classes=num_classes)
