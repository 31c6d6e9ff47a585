"""Ops that change a tensor's rank: flatten, reshape, squeeze, unsqueeze, transpose, and Shape reads."""

from __future__ import annotations

import math

import numpy as np

from edgeprune.ops.common import Unsupported, axes_of, normalize_axis
from edgeprune.ops.registry import OpRule, op_rule


def _static(dims) -> bool:
    return all(isinstance(d, (int, np.integer)) for d in dims)


def _flattened_ids(track, shape) -> np.ndarray:
    """Channel c of an N,C,H,W map owns positions c*H*W .. (c+1)*H*W-1 once flattened."""
    trailing = shape[track.axis + 1 :]
    if not _static(trailing):
        raise Unsupported("flattening needs static spatial dimensions")
    return np.repeat(track.ids, int(math.prod(trailing)))


@op_rule("Flatten")
class FlattenRule(OpRule):
    def propagate(self, node, ctx) -> None:
        track = ctx.track(node.inputs[0])
        if track is None:
            return
        shape = ctx.shape(node.inputs[0])
        if shape is None:
            raise Unsupported("the shape of its input is unknown")
        axis = normalize_axis(int(node.attrs.get("axis", 1)), len(shape))
        if axis != track.axis or track.axis != 1:
            raise Unsupported("it merges the channel axis with the batch axis")
        ctx.set_track(node.outputs[0], 1, _flattened_ids(track, shape))


def _keeps_batch(in_shape, out_shape, target: list[int], allowzero: int) -> bool:
    """Axis 0 stays the batch: the same dimension, copied (0), or inferred (-1) from an exact rest."""
    if out_shape[0] == in_shape[0] and out_shape[0] is not None:
        return True
    if target[0] == 0 and not allowzero:
        return True
    rest = target[1:]
    return (
        target[0] == -1
        and all(v > 0 for v in rest)
        and _static(in_shape[1:])
        and math.prod(rest) == math.prod(in_shape[1:])
    )


def _squeezed(dims) -> list:
    return [d for d in dims if d != 1]


@op_rule("Reshape")
class ReshapeRule(OpRule):
    """Two reshapes keep channels apart: flattening N,C,... into N,C*... (channel c owns a block of
    rows), and adding or removing size-1 axes after the channel axis (N,C,1,1 <-> N,C)."""

    def propagate(self, node, ctx) -> None:
        track = ctx.track(node.inputs[0])
        if track is None:
            return
        in_shape, out_shape = ctx.shape(node.inputs[0]), ctx.shape(node.outputs[0])
        target = ctx.constant(node.inputs[1])
        if in_shape is None or out_shape is None or track.axis != 1 or len(out_shape) < 2:
            raise Unsupported("it reshapes across the channel axis")
        if target is None:
            raise Unsupported("its target shape is computed at run time")
        if not _keeps_batch(in_shape, out_shape, [int(v) for v in target], int(node.attrs.get("allowzero", 0))):
            raise Unsupported("it moves channels into the batch axis")
        if out_shape[1] == len(track.ids) and _squeezed(out_shape[2:]) == _squeezed(in_shape[2:]):
            ctx.set_track(node.outputs[0], 1, track.ids)
        elif len(out_shape) == 2 and _static(in_shape[1:]) and out_shape[1] == math.prod(in_shape[1:]):
            ctx.set_track(node.outputs[0], 1, _flattened_ids(track, in_shape))
        else:
            raise Unsupported("it reshapes across the channel axis")

    def rewrite(self, node, sctx) -> None:
        kept_out = sctx.kept(node.outputs[0])
        if kept_out is None:
            return
        target = np.array(sctx.constant(node.inputs[1]), dtype=np.int64)
        if target[1] > 0:
            target[1] = int(kept_out.sum())
            sctx.set_constant(node, 1, target)


@op_rule("Squeeze", "Unsqueeze")
class SqueezeRule(OpRule):
    def propagate(self, node, ctx) -> None:
        track = ctx.track(node.inputs[0])
        if track is None:
            return
        in_rank = len(ctx.shape(node.inputs[0]) or ()) or None
        out_rank = len(ctx.shape(node.outputs[0]) or ()) or None
        axes = axes_of(node, ctx, 1)
        if in_rank is None or out_rank is None or axes is None:
            raise Unsupported("its axes or ranks are unknown")
        if node.op == "Squeeze":
            axes = [normalize_axis(a, in_rank) for a in axes]
            if track.axis in axes:
                raise Unsupported("it removes the channel axis")
            axis = track.axis - sum(a < track.axis for a in axes)
        else:
            inserted = sorted(normalize_axis(a, out_rank) for a in axes)
            kept_axes = [a for a in range(out_rank) if a not in inserted]
            axis = kept_axes[track.axis]
        ctx.set_track(node.outputs[0], axis, track.ids)


@op_rule("Transpose")
class TransposeRule(OpRule):
    def propagate(self, node, ctx) -> None:
        track = ctx.track(node.inputs[0])
        if track is None:
            return
        rank = len(ctx.shape(node.inputs[0]) or ())
        perm = [int(p) for p in node.attrs.get("perm", list(range(rank))[::-1])]
        if not perm:
            raise Unsupported("the rank of its input is unknown")
        ctx.set_track(node.outputs[0], perm.index(track.axis), track.ids)


@op_rule("Shape")
class ShapeRule(OpRule):
    """Reading a shape is harmless when only non-channel dimensions are used (the batch size)."""

    def propagate(self, node, ctx) -> None:
        track = ctx.track(node.inputs[0])
        if track is None:
            return
        start = int(node.attrs.get("start", 0))
        for consumer in node.outputs[0].outputs:
            index = ctx.constant(consumer.inputs[1]) if consumer.op == "Gather" else None
            if index is None or index.ndim != 0 or int(index) + start == track.axis:
                raise Unsupported("its result (the channel count) is used, and pruning changes it")


@op_rule("DepthToSpace", "SpaceToDepth")
class BlockChannelRule(OpRule):
    def propagate(self, node, ctx) -> None:
        if ctx.track(node.inputs[0]) is not None:
            raise Unsupported("it maps channel blocks to space; pruning inside a block is not supported yet")
