"""Which maps the semiotic analysis looks at: one per prunable group's feature map, in topological order.

The layers are the maps the capture stage measures (the activations a prunable group's producers hand to
their summing consumers, after the activation function). A map that reaches its consumer only through a
global pooling is taken before the pooling, since a 1x1 map has no spatial structure to measure.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.capture.points import capture_points
from edgeprune.errors import InputError
from edgeprune.graph.model import ModelGraph

_POOLS = ("GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax")


@dataclass(frozen=True)
class SaliencyLayer:
    """``tensor``: an N,C,H,W map whose channel positions belong to ``groups``; ``name``: its producer node."""

    name: str
    tensor: str
    groups: tuple[str, ...]
    channels: int


def saliency_layers(model: ModelGraph, analysis: ChannelAnalysis) -> tuple[SaliencyLayer, ...]:
    """The spatial maps of the prunable groups, ordered as their producers run."""
    nodes = list(model.proto.graph.node)
    producer = {out: node for node in nodes for out in node.output}
    position = {out: i for i, node in enumerate(nodes) for out in node.output}
    chosen: dict[str, SaliencyLayer] = {}
    for point in capture_points(model, analysis):
        tensor = _spatial(point.tensor, model, analysis, producer)
        if tensor is None or tensor in chosen:
            continue
        classes = analysis.tensors[tensor].classes
        groups = tuple(dict.fromkeys(analysis.groups[int(i)].id for i in analysis.class_group[classes]))
        chosen[tensor] = SaliencyLayer(
            producer[tensor].name if tensor in producer else tensor, tensor, groups, len(classes)
        )
    if not chosen:
        raise InputError("the model has no prunable group with a spatial feature map (H x W > 1) to analyse")
    return tuple(sorted(chosen.values(), key=lambda layer: position.get(layer.tensor, -1)))


def _spatial(tensor: str, model: ModelGraph, analysis: ChannelAnalysis, producer) -> str | None:
    """``tensor`` itself when its maps have more than one site, else the map a global pooling made it from."""
    if _sites(model, tensor) != 1:
        return tensor
    node = producer.get(tensor)
    if node is None or node.op_type not in _POOLS:
        return None
    source = node.input[0]
    channels = analysis.tensors.get(source)
    shape = model.shapes.get(source, ())
    if channels is None or len(shape) != 4 or channels.axis != 1 or _sites(model, source) == 1:
        return None
    return source


def _sites(model: ModelGraph, tensor: str) -> int | None:
    """H x W of a 4-D tensor, or None when unknown (symbolic)."""
    shape = model.shapes.get(tensor, ())
    if len(shape) != 4 or not all(isinstance(d, int) for d in shape[2:]):
        return None
    height, width = shape[2], shape[3]
    assert isinstance(height, int) and isinstance(width, int)  # checked above
    return height * width
