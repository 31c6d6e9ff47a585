"""Building blocks shared by the zoo families, and the deterministic parameter randomisation.

Every BatchNorm gets non-trivial running statistics and affine parameters: with the defaults (mean 0, var 1,
weight 1, bias 0) folding BatchNorm into the preceding Conv is the identity and a wrong fold goes unnoticed.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel: int = 3,
    stride: int = 1,
    groups: int = 1,
    act: type[nn.Module] | None = nn.ReLU,
) -> nn.Sequential:
    """Conv (no bias, as BN follows) -> BN -> optional activation: the unit almost every CNN repeats."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


def classifier(in_channels: int, num_classes: int) -> nn.Sequential:
    """Global average pooling -> flatten -> Linear: the head of the ResNet/MobileNet-style models."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(in_channels, num_classes))


class LayerScale(nn.Module):
    """``x * gamma`` with one learned scale per channel of the last axis (ConvNeXt's layer scale)."""

    def __init__(self, channels: int, init: float = 1e-6) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((channels,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


def randomize_parameters(module: nn.Module, seed: int) -> None:
    """Give every layer seeded weights and every BatchNorm non-trivial stats, then switch to eval mode.

    Convs and Linears get He-normal weights (fan-in, ReLU gain) so activations keep an O(1) scale through
    the depth of the model and output comparisons are meaningful. BN running stats are drawn independently
    of the real activation statistics on purpose: the fold must be exact whatever the values are.
    LayerNorms get non-trivial affine parameters and layer scales values near 1 (not ConvNeXt's 1e-6
    start): a residual branch scaled to nothing would make every comparison of its channels meaningless.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                fan_in = layer.weight[0].numel()
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if layer.bias is not None:
                    layer.bias.copy_(0.1 * torch.randn(layer.bias.shape, generator=gen))
            elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = layer.num_features
                assert layer.running_mean is not None and layer.running_var is not None
                layer.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                layer.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=gen))
                layer.weight.copy_(0.5 + torch.rand(n, generator=gen))
                layer.bias.copy_(0.2 * torch.randn(n, generator=gen))
            elif isinstance(layer, nn.LayerNorm) and layer.elementwise_affine:
                layer.weight.copy_(0.5 + torch.rand(layer.weight.shape, generator=gen))
                if layer.bias is not None:
                    layer.bias.copy_(0.2 * torch.randn(layer.bias.shape, generator=gen))
            elif isinstance(layer, LayerScale):
                layer.gamma.copy_(0.5 + torch.rand(layer.gamma.shape, generator=gen))
    module.eval()
