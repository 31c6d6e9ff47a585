"""Where to look at a group's channels: the feature maps its summing consumers read (post-activation),
and, for the MI criterion, what those consumers make of them (their outputs, pre-activation).

A map is N,C,H,W (channels on axis 1) or, inside a channels-last block (ConvNeXt's MLP), N,H,W,C (channels on
axis 3); there the consumer is a MatMul by a stored matrix, and its N,H,W,C output is the next layer's map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.graph.model import ModelGraph

_SPATIAL_CONSUMERS = ("Conv", "ConvTranspose")
_TRANSPARENT = ("Flatten", "Reshape", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax", "Squeeze")
CHANNEL_AXES = (1, 3)  # N,C,H,W and N,H,W,C


@dataclass(frozen=True)
class CapturePoint:
    """``tensor``: a 4-D map of tracked channels, on ``channel_axis``. ``next_tensor``: a consumer's spatial
    output, or None, with its channels on ``next_axis``."""

    tensor: str
    consumer: str
    next_tensor: str | None
    channel_axis: int = 1
    next_axis: int = 1

    @property
    def spatial_axes(self) -> tuple[int, int]:
        """The H and W axes of ``tensor`` (and of ``next_tensor``, which has the same layout)."""
        return (2, 3) if self.channel_axis == 1 else (1, 2)


def capture_points(
    model: ModelGraph, analysis: ChannelAnalysis, channels_last: bool = False
) -> tuple[CapturePoint, ...]:
    """One point per distinct map that a prunable group's channels reach a summing node through.

    ``channels_last`` adds the N,H,W,C maps; a caller that reads every point as N,C,H,W leaves it off."""
    nodes = {node.name: node for node in model.proto.graph.node}
    producer = {out: node for node in model.proto.graph.node for out in node.output}
    prunable = {i for i, g in enumerate(analysis.groups) if g.prunable}
    axes = CHANNEL_AXES if channels_last else (1,)
    points: dict[str, CapturePoint] = {}
    for consumer_name, tensor in analysis.reducing_edges:
        consumer = nodes[consumer_name]
        source = _spatial_source(tensor, model, analysis, producer, axes)
        if source is None or not prunable & set(analysis.class_group[analysis.tensors[source].classes].tolist()):
            continue
        axis = analysis.tensors[source].axis
        following = consumer.output[0] if source == tensor and _spatial_output(consumer, axis, model) else None
        # a conv's output has its channels on axis 1 like its input, a channels-last MatMul's on the last
        candidate = CapturePoint(source, consumer_name, following, axis, axis)
        if source not in points or (points[source].next_tensor is None and candidate.next_tensor is not None):
            points[source] = candidate
    return tuple(points.values())


def _spatial_output(consumer, axis: int, model: ModelGraph) -> bool:
    """Whether the consumer's output is a map of the same layout: a conv's of an N,C,H,W map, a MatMul's 4-D
    output of an N,H,W,C one (a Linear on the last axis keeps the sites)."""
    if axis == 1:
        return consumer.op_type in _SPATIAL_CONSUMERS
    return consumer.op_type == "MatMul" and len(model.shapes.get(consumer.output[0], ())) == 4


def _spatial_source(tensor: str, model: ModelGraph, analysis: ChannelAnalysis, producer, axes=(1,)) -> str | None:
    """The 4-D map behind ``tensor``: itself, or the map a flatten/global pooling made it from."""
    for _ in range(4):
        shape = model.shapes.get(tensor, ())
        channels = analysis.tensors.get(tensor)
        if channels is not None and len(shape) == 4 and channels.axis in axes:
            if len(channels.classes) == shape[channels.axis]:
                return tensor
        node = producer.get(tensor)
        if node is None or node.op_type not in _TRANSPARENT:
            return None
        tensor = node.input[0]
    return None


def channels_first(values: np.ndarray, point: CapturePoint, next_map: bool = False) -> np.ndarray:
    """``values`` of the point's map (or of its next map) as N,C,H,W: the channel axis moved to position 1."""
    axis = point.next_axis if next_map else point.channel_axis
    return values if axis == 1 else np.moveaxis(values, axis, 1)
