"""ResNeXt: bottlenecks whose 3x3 conv is grouped, so its channels can only be pruned group-wise.

A grouped conv couples input and output channels within each group: a pruning plan must keep the same
number of channels in every group (or prune whole groups).
"""

from __future__ import annotations

from torch import nn

from edgeprune.zoo._registry import register_architecture
from edgeprune.zoo.resnet import Bottleneck, ResNet


@register_architecture("resnext", input_shapes=[(3, 32, 32)])
def resnext(num_classes: int = 10) -> nn.Module:
    """Grouped bottlenecks (cardinality 4, then 8) with projection shortcuts and one identity block."""
    blocks = [
        Bottleneck(16, 16, 32, groups=4),
        Bottleneck(32, 16, 32, groups=4),
        Bottleneck(32, 32, 64, stride=2, groups=8),
    ]
    return ResNet(16, blocks, 64, num_classes=num_classes)
