"""Conv and ConvTranspose: the ops that create channels, and the dense sums that consume them."""

from __future__ import annotations

import numpy as np

from edgeprune.ops.common import Unsupported
from edgeprune.ops.registry import OpRule, op_rule


def _weights(node, ctx) -> np.ndarray:
    weight = ctx.constant(node.inputs[1])
    if weight is None:
        raise Unsupported("its weights are computed at run time, not stored in the model")
    if len(node.inputs) > 2 and node.inputs[2].name and ctx.constant(node.inputs[2]) is None:
        raise Unsupported("its bias is computed at run time")
    return weight


def _has_bias(node) -> bool:
    return len(node.inputs) > 2 and bool(node.inputs[2].name)


@op_rule("Conv")
class ConvRule(OpRule):
    """Dense (group 1), grouped, and depthwise (one input channel per group, any multiplier) convs.

    Kinds are told apart by the weight shape, not by the channel counts alone: a conv with
    ``group == C_in`` and weight shape (C_out, 1, k, k) is depthwise; its output channels belong to the
    input's group. A grouped conv needs an equal kept count in each of its groups on both sides.
    """

    def propagate(self, node, ctx) -> None:
        weight = _weights(node, ctx)
        groups = int(node.attrs.get("group", 1))
        x, out = node.inputs[0], node.outputs[0]
        track = ctx.track(x)
        if track is not None and track.axis != 1:
            raise Unsupported("its input's channel axis is not axis 1")
        c_out, per_group = weight.shape[0], weight.shape[1]
        if groups > 1 and per_group == 1:
            if track is None:
                ids = ctx.new_space(node.name, out, 1, c_out)
                ctx.freeze(ids, node, "depthwise conv over input channels that are not tracked")
            else:
                ctx.set_track(out, 1, np.repeat(track.ids, c_out // groups))
        else:
            if track is not None:
                ctx.reduce(node, x)
                ctx.slice_with(node, 1, 1, x)
                ctx.require_divisions(node, track.ids, groups)
            ids = ctx.new_space(node.name, out, 1, c_out)
            ctx.require_divisions(node, ids, groups)
        ctx.slice_with(node, 1, 0, out)
        if _has_bias(node):
            ctx.slice_with(node, 2, 0, out)

    def rewrite(self, node, sctx) -> None:
        groups = int(node.attrs.get("group", 1))
        weight = sctx.constant(node.inputs[1])
        kept_in = sctx.kept(node.inputs[0])
        if groups == 1 or kept_in is None:
            return
        if weight.shape[1] == 1:  # depthwise: one group per kept input channel
            node.attrs["group"] = int(kept_in.sum())
            return
        # grouped: generic slicing cut the rows; now cut each group's columns by its own kept inputs
        per_group_in = kept_in.reshape(groups, -1)
        rows = weight.shape[0] // groups
        blocks = [weight[g * rows : (g + 1) * rows][:, per_group_in[g]] for g in range(groups)]
        sctx.set_constant(node, 1, np.concatenate(blocks, axis=0))


@op_rule("ConvTranspose")
class ConvTransposeRule(OpRule):
    def propagate(self, node, ctx) -> None:
        weight = _weights(node, ctx)
        if int(node.attrs.get("group", 1)) != 1:
            raise Unsupported("grouped ConvTranspose is not supported")
        x, out = node.inputs[0], node.outputs[0]
        track = ctx.track(x)
        if track is not None:
            if track.axis != 1:
                raise Unsupported("its input's channel axis is not axis 1")
            ctx.reduce(node, x)
            ctx.slice_with(node, 1, 0, x)
        ctx.new_space(node.name, out, 1, weight.shape[1])
        ctx.slice_with(node, 1, 1, out)
        if _has_bias(node):
            ctx.slice_with(node, 2, 0, out)
