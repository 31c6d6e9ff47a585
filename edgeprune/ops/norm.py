"""Normalisations: per-channel ones slice their parameters; cross-channel ones freeze."""

from __future__ import annotations

from edgeprune.ops.common import Unsupported, normalize_axis, passthrough
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
    """Normalisations that mix channels: removing one channel changes the others' values.

    Such a norm couples nothing new (each output channel sits where its input channel was), but the group
    it normalises over can never lose a channel, so it is frozen with that reason and its channels carry on
    through the output unchanged. That is what lets a LayerNorm over the channels-last axis of a
    ConvNeXt-style block freeze the residual stream while the Linear layers after it still create and
    consume their own hidden channels. A LayerNorm or LpNorm over axes after the channel axis only
    normalises within each channel, and passes the channels through untouched.
    """

    def propagate(self, node, ctx) -> None:
        track = ctx.track(node.inputs[0])
        if track is None:
            return
        if node.op in ("LpNormalization", "LayerNormalization"):
            rank = len(ctx.shape(node.inputs[0]) or ())
            axis = normalize_axis(int(node.attrs.get("axis", -1)), rank) if rank else None
            spans_channels = axis is None or (
                axis <= track.axis if node.op == "LayerNormalization" else axis == track.axis
            )
            if not spans_channels:
                passthrough(node, ctx)
                return
        # a LayerNorm's optional mean and inverse-deviation outputs hold one value per position, not per
        # channel: they stay untracked, and depend on nothing a plan can remove once the group is frozen
        reason = "it normalises across channels, so removing a channel changes the others"
        for tensor in node.inputs:  # the input, and a scale or bias made at run time from other channels
            if ctx.track(tensor) is not None:
                ctx.freeze(ctx.track(tensor).ids, node, reason)
        ctx.set_track(node.outputs[0], track.axis, track.ids)


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
