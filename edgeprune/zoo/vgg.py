"""VGG-style plain stacks: the simplest prunable chain, ending in a two-layer MLP head.

The hidden Linear makes a prunable Gemm->Gemm group, and ``nn.Flatten`` after a 4x4 map makes the
Flatten->Gemm coupling where one conv channel owns 16 rows of the first Linear's input.
"""

from __future__ import annotations

from torch import Tensor, nn

from edgeprune.zoo._blocks import conv_bn
from edgeprune.zoo._registry import register_architecture

# Channel widths, with "M" for a 2x2 max pool: 32x32 -> 4x4 after the three pools.
VGG_LAYOUT: tuple[int | str, ...] = (16, 16, "M", 32, 32, "M", 64, "M")


class VGG(nn.Module):
    """conv-BN-ReLU stacks with max pooling, then Flatten -> Linear -> ReLU -> Linear."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        layout: tuple[int | str, ...] = VGG_LAYOUT,
        hidden: int = 64,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = in_channels, image_size
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                size //= 2
            else:
                layers.append(conv_bn(channels, int(item)))
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(1),
            nn.Linear(channels * size * size, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _vgg_shapes(in_channels: int = 3, image_size: int = 32, **_: object) -> list[tuple[int, int, int]]:
    return [(in_channels, image_size, image_size)]


@register_architecture("vgg", input_shapes=_vgg_shapes)
def vgg(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> nn.Module:
    """A VGG-11-like stack scaled down to 16-64 channels.

    The Flatten -> Linear width depends on the input size, so it is a parameter: ``in_channels=1,
    image_size=28`` is the Fashion-MNIST variant (28 -> 14 -> 7 -> 3, so 64 x 3 x 3 = 576 Linear inputs).
    """
    return VGG(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
