"""Which maps the semiotic analysis looks at: one per prunable group's feature map, in topological order.

The layers are the maps the capture stage measures (the activations a prunable group's producers hand to
their summing consumers, after the activation function), in the layout capture reads them: N,C,H,W, or
N,H,W,C inside a channels-last block (ConvNeXt's MLP), where the channels sit on the last axis. A map that
reaches its consumer only through a global pooling is taken before the pooling, since a 1x1 map has no
spatial structure to measure.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.capture.points import CHANNEL_AXES, capture_points
from edgeprune.errors import InputError
from edgeprune.graph.model import ModelGraph

_POOLS = ("GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax")


@dataclass(frozen=True)
class SaliencyLayer:
    """``tensor``: a 4-D map whose channel positions belong to ``groups``, its channels on ``channel_axis`` (1:
    N,C,H,W; 3: N,H,W,C, the axis the channel analysis tracks and capture reads); ``name``: its producer node."""

    name: str
    tensor: str
    groups: tuple[str, ...]
    channels: int
    channel_axis: int = 1

    @property
    def spatial_axes(self) -> tuple[int, int]:
        return spatial_axes(self.channel_axis)


def saliency_layers(model: ModelGraph, analysis: ChannelAnalysis) -> tuple[SaliencyLayer, ...]:
    """The spatial maps of the prunable groups, ordered as their producers run."""
    nodes = list(model.proto.graph.node)
    producer = {out: node for node in nodes for out in node.output}
    position = {out: i for i, node in enumerate(nodes) for out in node.output}
    chosen: dict[str, SaliencyLayer] = {}
    for point in capture_points(model, analysis, channels_last=True):
        tensor = _spatial(point.tensor, model, analysis, producer)
        if tensor is None or tensor in chosen:
            continue
        channels = analysis.tensors[tensor]
        groups = tuple(dict.fromkeys(analysis.groups[int(i)].id for i in analysis.class_group[channels.classes]))
        name = producer[tensor].name if tensor in producer else tensor
        chosen[tensor] = SaliencyLayer(name, tensor, groups, len(channels.classes), channels.axis)
    if not chosen:
        raise InputError("the model has no prunable group with a spatial feature map (H x W > 1) to analyse")
    return tuple(sorted(chosen.values(), key=lambda layer: position.get(layer.tensor, -1)))


def spatial_axes(channel_axis: int) -> tuple[int, int]:
    """The H and W axes of a 4-D map with its channels on ``channel_axis`` (1 or 3)."""
    return (2, 3) if channel_axis == 1 else (1, 2)


def _spatial(tensor: str, model: ModelGraph, analysis: ChannelAnalysis, producer) -> str | None:
    """``tensor`` itself when its maps have more than one site, else the map a global pooling made it from."""
    if _sites(model, analysis, tensor) != 1:
        return tensor
    node = producer.get(tensor)
    if node is None or node.op_type not in _POOLS:
        return None
    source = node.input[0]
    channels = analysis.tensors.get(source)
    shape = model.shapes.get(source, ())
    if channels is None or len(shape) != 4 or channels.axis not in CHANNEL_AXES:
        return None
    return None if _sites(model, analysis, source) == 1 else source


def _sites(model: ModelGraph, analysis: ChannelAnalysis, tensor: str) -> int | None:
    """H x W of a 4-D map (its spatial axes by where its channels are), or None when unknown (symbolic)."""
    shape = model.shapes.get(tensor, ())
    channels = analysis.tensors.get(tensor)
    if len(shape) != 4 or channels is None or channels.axis not in CHANNEL_AXES:
        return None
    height, width = (shape[axis] for axis in spatial_axes(channels.axis))
    if not isinstance(height, int) or not isinstance(width, int):
        return None
    return height * width
