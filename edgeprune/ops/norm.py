"""Normalisations: per-channel ones slice their parameters; cross-channel ones freeze."""

from __future__ import annotations

from edgeprune.analysis.context import Unsupported
from edgeprune.ops.common import normalize_axis, passthrough
from edgeprune.ops.registry import OpRule, op_rule


@op_rule("BatchNormalization", "InstanceNormalization")
class PerChannelNormRule(OpRule):
    def propagate(self, node, ctx) -> None:
        if any(out.outputs for out in node.outputs[1:]):
            raise Unsupported("its training-mode statistics outputs are used")
        track = ctx.track(node.inputs[0])
        if track is None:
            return
        if track.axis != 1:
            raise Unsupported("its input's channel axis is not axis 1")
        out = node.outputs[0]
        ctx.set_track(out, 1, track.ids)
        for index in range(1, len(node.inputs)):
            if ctx.constant(node.inputs[index]) is None:
                raise Unsupported("its parameters are computed at run time")
        for index in range(1, len(node.inputs)):
            ctx.slice_with(node, index, 0, out)


@op_rule("LRN", "LayerNormalization", "GroupNormalization", "LpNormalization", "MeanVarianceNormalization")
class CrossChannelNormRule(OpRule):
    """Normalisations that mix channels: removing one channel changes the others' values."""

    def propagate(self, node, ctx) -> None:
        track = ctx.track(node.inputs[0])
        if track is None:
            return
        if node.op in ("LpNormalization", "LayerNormalization"):
            rank = len(ctx.shape(node.inputs[0]) or ())
            axis = normalize_axis(int(node.attrs.get("axis", -1)), rank) if rank else None
            spans_channels = axis is None or (axis <= track.axis if node.op == "LayerNormalization" else axis == track.axis)
            if not spans_channels:
                passthrough(node, ctx)
                return
        raise Unsupported("it normalises across channels, so removing a channel changes the others")


@op_rule("Softmax", "LogSoftmax", "Hardmax")
class SoftmaxRule(OpRule):
    def propagate(self, node, ctx) -> None:
        track = ctx.track(node.inputs[0])
        if track is None:
            return
        shape = ctx.shape(node.inputs[0])
        if shape is None:
            raise Unsupported("the rank of its input is unknown")
        opset_13 = ctx.opset >= 13
        axis = normalize_axis(int(node.attrs.get("axis", -1 if opset_13 else 1)), len(shape))
        covers_channels = axis == track.axis if opset_13 else axis <= track.axis
        if covers_channels:
            raise Unsupported("it normalises across channels, so removing a channel changes the others")
        passthrough(node, ctx)
