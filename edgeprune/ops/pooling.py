"""Spatial ops that act on each channel alone: pooling, spatial reductions, padding, resizing."""

from __future__ import annotations

import numpy as np

from edgeprune.ops.common import Unsupported, axes_of, normalize_axis, passthrough, rank_of
from edgeprune.ops.registry import OpRule, op_rule


@op_rule("MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "MaxRoiPool")
class PoolRule(OpRule):
    def propagate(self, node, ctx) -> None:
        if len(node.outputs) > 1 and node.outputs[1].outputs:
            raise Unsupported("its argmax indices are used; they encode channel offsets")
        track = ctx.track(node.inputs[0])
        if track is not None and track.axis != 1:
            raise Unsupported("its input's channel axis is not axis 1")
        if track is not None:
            ctx.set_track(node.outputs[0], 1, track.ids)


@op_rule(
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceSum",
    "ReduceL1",
    "ReduceL2",
    "ReduceProd",
    "ReduceLogSumExp",
    "ReduceSumSquare",
    "ReduceLogSum",
)
class ReduceRule(OpRule):
    """A reduction over spatial axes keeps each channel apart; one over the channel axis mixes them all.

    A reduction over the channels (the mean and variance of a LayerNorm written out as ReduceMean, Sub,
    Pow, Sqrt and Div, or the channel mean of a spatial attention map) freezes the group it reads: removing
    a channel would change every value. Its output holds one value per position, not per channel, so it is
    left untracked and broadcasts over the channels it is combined with again (that is how the written-out
    LayerNorm's Sub and Div keep the stream's channels).
    """

    def propagate(self, node, ctx) -> None:
        track = ctx.track(node.inputs[0])
        if track is None:
            return
        rank = rank_of(node.inputs[0], ctx)
        axes = axes_of(node, ctx, 1)
        if axes is None and int(node.attrs.get("noop_with_empty_axes", 0)):
            passthrough(node, ctx)
            return
        axes = list(range(rank)) if axes is None else [normalize_axis(a, rank) for a in axes]
        if track.axis in axes:
            ctx.freeze(track.ids, node, "it reduces over the channel axis, so removing a channel changes its result")
            return
        keepdims = int(node.attrs.get("keepdims", 1))
        axis = track.axis if keepdims else track.axis - sum(a < track.axis for a in axes)
        ctx.set_track(node.outputs[0], axis, track.ids)


@op_rule("Pad")
class PadRule(OpRule):
    def propagate(self, node, ctx) -> None:
        track = ctx.track(node.inputs[0])
        if track is None:
            return
        rank = rank_of(node.inputs[0], ctx)
        pads = node.attrs.get("pads")
        if pads is None:
            pads = ctx.constant(node.inputs[1])
            if pads is None:
                raise Unsupported("its pads are computed at run time")
        pads = [int(p) for p in np.asarray(pads).reshape(-1)]
        axes = axes_of(node, ctx, 3) or list(range(rank))
        axes = [normalize_axis(a, rank) for a in axes]
        if track.axis in axes:
            k = axes.index(track.axis)
            if pads[k] or pads[k + len(axes)]:
                raise Unsupported("it pads the channel axis")
        passthrough(node, ctx)


@op_rule("Resize", "Upsample")
class ResizeRule(OpRule):
    def propagate(self, node, ctx) -> None:
        track = ctx.track(node.inputs[0])
        if track is None:
            return
        scales = node.attrs.get("scales")
        if scales is None:
            index = 1 if node.op == "Upsample" else 2
            scales = ctx.constant(node.inputs[index]) if len(node.inputs) > index and node.inputs[index].name else None
        sizes = (
            ctx.constant(node.inputs[3])
            if node.op == "Resize" and len(node.inputs) > 3 and node.inputs[3].name
            else None
        )
        if scales is None and sizes is None:
            raise Unsupported("its scales or sizes are computed at run time")
        if "axes" in node.attrs:
            raise Unsupported("resizing with an explicit axes list is not supported")
        if scales is not None and np.asarray(scales).size and float(np.asarray(scales).reshape(-1)[track.axis]) != 1.0:
            raise Unsupported("it scales the channel axis")
        passthrough(node, ctx)

    def rewrite(self, node, sctx) -> None:
        kept = sctx.kept(node.inputs[0])
        if kept is None or node.op != "Resize" or len(node.inputs) <= 3 or not node.inputs[3].name:
            return
        sizes = np.array(sctx.constant(node.inputs[3]), dtype=np.int64)
        sizes[sctx.analysis_track(node.inputs[0]).axis] = int(kept.sum())
        sctx.set_constant(node, 3, sizes)
