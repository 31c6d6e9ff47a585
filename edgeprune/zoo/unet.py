"""A small UNet: skip connections concatenate encoder maps with upsampled decoder maps.

The skip Concat couples an encoder conv's channels with a slice of a decoder conv's input across the
resolution change; one upsampling is nearest (``nn.Upsample``), one bilinear (``F.interpolate``), because
they export to Resize nodes with different attributes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeprune.zoo._blocks import conv_bn
from edgeprune.zoo._registry import register_architecture


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two conv-BN-ReLU at one resolution, the UNet stage."""
    return nn.Sequential(conv_bn(in_channels, out_channels), conv_bn(out_channels, out_channels))


class UNet(nn.Module):
    """Encoder 8 -> 16 -> 32 (max pool), decoder back to 32x32 with skip concats, 1x1 output head."""

    def __init__(self, in_channels: int = 3, out_channels: int = 2) -> None:
        super().__init__()
        self.enc1 = double_conv(in_channels, 8)
        self.enc2 = double_conv(8, 16)
        self.bottom = double_conv(16, 32)
        self.pool = nn.MaxPool2d(2)
        self.up_nearest = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec2 = double_conv(32 + 16, 16)
        self.dec1 = double_conv(16 + 8, 8)
        self.out = nn.Conv2d(8, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        bottom = self.bottom(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up_nearest(bottom), e2], dim=1))
        up = F.interpolate(d2, scale_factor=2, mode="bilinear", align_corners=False)
        d1 = self.dec1(torch.cat([up, e1], dim=1))
        return self.out(d1)


@register_architecture("unet", input_shapes=[(3, 32, 32)])
def unet(out_channels: int = 2) -> nn.Module:
    """A two-level UNet on 3x32x32 images with a 2-class segmentation map."""
    return UNet(out_channels=out_channels)
