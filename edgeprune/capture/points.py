"""Where to look at a group's channels: the feature maps its summing consumers read (post-activation),
and, for the MI criterion, what those consumers make of them (their outputs, pre-activation)."""

from __future__ import annotations

from dataclasses import dataclass

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.graph.model import ModelGraph

_SPATIAL_CONSUMERS = ("Conv", "ConvTranspose")
_TRANSPARENT = ("Flatten", "Reshape", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax", "Squeeze")


@dataclass(frozen=True)
class CapturePoint:
    """``tensor``: an N,C,H,W map of tracked channels. ``next_tensor``: a consumer's spatial output, or None."""

    tensor: str
    consumer: str
    next_tensor: str | None


def capture_points(model: ModelGraph, analysis: ChannelAnalysis) -> tuple[CapturePoint, ...]:
    """One point per distinct map that a prunable group's channels reach a summing node through."""
    nodes = {node.name: node for node in model.proto.graph.node}
    producer = {out: node for node in model.proto.graph.node for out in node.output}
    prunable = {i for i, g in enumerate(analysis.groups) if g.prunable}
    points: dict[str, CapturePoint] = {}
    for consumer_name, tensor in analysis.reducing_edges:
        consumer = nodes[consumer_name]
        source = _spatial_source(tensor, model, analysis, producer)
        if source is None or not prunable & set(analysis.class_group[analysis.tensors[source].classes].tolist()):
            continue
        spatial_next = source == tensor and consumer.op_type in _SPATIAL_CONSUMERS
        candidate = CapturePoint(source, consumer_name, consumer.output[0] if spatial_next else None)
        if source not in points or (points[source].next_tensor is None and candidate.next_tensor is not None):
            points[source] = candidate
    return tuple(points.values())


def _spatial_source(tensor: str, model: ModelGraph, analysis: ChannelAnalysis, producer) -> str | None:
    """The 4-D map behind ``tensor``: itself, or the map a flatten/global pooling made it from."""
    for _ in range(4):
        shape = model.shapes.get(tensor, ())
        channels = analysis.tensors.get(tensor)
        if channels is not None and len(shape) == 4 and channels.axis == 1 and len(channels.classes) == shape[1]:
            return tensor
        node = producer.get(tensor)
        if node is None or node.op_type not in _TRANSPARENT:
            return None
        tensor = node.input[0]
    return None
