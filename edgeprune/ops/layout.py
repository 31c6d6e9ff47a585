"""Ops that move channel positions around: concat, split, slice, gather, flatten, reshape, transpose."""

from __future__ import annotations

import numpy as np

from edgeprune.ops.common import Unsupported, int_list, new_positions, normalize_axis, passthrough, rank_of
from edgeprune.ops.registry import OpRule, op_rule


@op_rule("Concat")
class ConcatRule(OpRule):
    """On the channel axis, positions are laid end to end (dense blocks, UNet skips, inception).

    An untracked or constant input contributes fresh channels that are frozen.
    """

    def propagate(self, node, ctx) -> None:
        tracks = [ctx.track(t) for t in node.inputs]
        live = [t for t in tracks if t is not None]
        if not live:
            return
        axis = normalize_axis(int(node.attrs["axis"]), rank_of(node.inputs[0], ctx))
        channel_axis = live[0].axis
        if any(t.axis != channel_axis for t in live):
            raise Unsupported("its inputs' channel axes differ")
        if axis != channel_axis:
            if len(live) != len(tracks) or len({len(t.ids) for t in live}) != 1:
                raise Unsupported("it joins tracked and untracked channels along another axis")
            for track in live[1:]:
                ctx.couple(live[0].ids, track.ids)
            ctx.set_track(node.outputs[0], channel_axis, live[0].ids)
            return
        extents = [None if t is not None else _extent(tensor, ctx, axis) for tensor, t in zip(node.inputs, tracks)]
        pieces = []
        for tensor, track, extent in zip(node.inputs, tracks, extents):
            if track is not None:
                pieces.append(track.ids)
                continue
            ids = ctx.fresh_ids(tensor.name, None, extent)
            ctx.freeze(ids, node, f"concatenated with {tensor.name}, whose channels are not tracked")
            pieces.append(ids)
        ctx.set_track(node.outputs[0], axis, np.concatenate(pieces))


def _extent(tensor, ctx, axis: int) -> int:
    values = ctx.constant(tensor)
    shape = values.shape if values is not None else ctx.shape(tensor)
    if shape is None or len(shape) <= axis or not isinstance(shape[axis], (int, np.integer)):
        raise Unsupported(f"the channel count of its input {tensor.name} is unknown")
    return int(shape[axis])


def _split_sizes(node, ctx, extent: int) -> list[int]:
    if len(node.inputs) > 1 and node.inputs[1].name:
        sizes = ctx.constant(node.inputs[1])
        if sizes is None:
            raise Unsupported("its split sizes are computed at run time")
        return int_list(sizes)
    if "split" in node.attrs:
        return int_list(node.attrs["split"])
    count = len(node.outputs)
    step = -(-extent // count)
    return [min(step, extent - i * step) for i in range(count)]


@op_rule("Split")
class SplitRule(OpRule):
    def propagate(self, node, ctx) -> None:
        track = ctx.track(node.inputs[0])
        if track is None:
            return
        axis = normalize_axis(int(node.attrs.get("axis", 0)), rank_of(node.inputs[0], ctx))
        if axis != track.axis:
            passthrough(node, ctx)
            return
        sizes = _split_sizes(node, ctx, len(track.ids))
        if sum(sizes) != len(track.ids) or len(sizes) != len(node.outputs):
            raise Unsupported("its split sizes do not add up to the channel count")
        offsets = np.cumsum([0] + sizes)
        for out, start, stop in zip(node.outputs, offsets[:-1], offsets[1:]):
            ctx.set_track(out, axis, track.ids[start:stop])

    def rewrite(self, node, sctx) -> None:
        kept = sctx.kept(node.inputs[0])
        if kept is None:
            return
        axis = normalize_axis(int(node.attrs.get("axis", 0)), sctx.rank(node.inputs[0]))
        if axis != sctx.analysis_track(node.inputs[0]).axis:
            return
        sizes = np.array(
            [int(sctx.analysis.kept_positions(out.name, sctx.keep).sum()) for out in node.outputs], dtype=np.int64
        )
        node.attrs.pop("num_outputs", None)
        if sctx.opset >= 13:
            sctx.set_constant(node, 1, sizes)
        else:
            node.attrs["split"] = [int(s) for s in sizes]


def _slice_params(node, ctx, rank: int):
    if "starts" in node.attrs:  # opset < 10
        starts, ends = int_list(node.attrs["starts"]), int_list(node.attrs["ends"])
        axes = int_list(node.attrs.get("axes", range(len(starts))))
        return starts, ends, axes, [1] * len(starts)
    values = [ctx.constant(t) if t.name else None for t in node.inputs[1:5]]
    if any(v is None for v in values[:2]) or any(v is None for v, t in zip(values[2:], node.inputs[3:5]) if t.name):
        raise Unsupported("its bounds are computed at run time")
    starts, ends = int_list(values[0]), int_list(values[1])
    axes = int_list(values[2]) if len(values) > 2 and values[2] is not None else list(range(len(starts)))
    steps = int_list(values[3]) if len(values) > 3 and values[3] is not None else [1] * len(starts)
    return starts, ends, [normalize_axis(a, rank) for a in axes], steps


@op_rule("Slice")
class SliceRule(OpRule):
    def propagate(self, node, ctx) -> None:
        track = ctx.track(node.inputs[0])
        if track is None:
            return
        starts, ends, axes, steps = _slice_params(node, ctx, rank_of(node.inputs[0], ctx))
        if track.axis not in axes:
            passthrough(node, ctx)
            return
        k = axes.index(track.axis)
        if steps[k] != 1:
            raise Unsupported("it takes every n-th channel (step != 1)")
        start, stop, _ = slice(starts[k], ends[k]).indices(len(track.ids))
        ctx.set_track(node.outputs[0], track.axis, track.ids[start:stop])

    def rewrite(self, node, sctx) -> None:
        kept = sctx.kept(node.inputs[0])
        if kept is None:
            return
        track = sctx.analysis_track(node.inputs[0])
        starts, ends, axes, steps = _slice_params(node, sctx, sctx.rank(node.inputs[0]))
        if track.axis not in axes:
            return
        k = axes.index(track.axis)
        start, stop, _ = slice(starts[k], ends[k]).indices(len(kept))
        starts[k], ends[k] = int(kept[:start].sum()), int(kept[:stop].sum())
        if "starts" in node.attrs:
            node.attrs["starts"], node.attrs["ends"] = starts, ends
        else:
            sctx.set_constant(node, 1, np.array(starts, dtype=np.int64))
            sctx.set_constant(node, 2, np.array(ends, dtype=np.int64))


@op_rule("Gather")
class GatherRule(OpRule):
    """Gather along the channel axis with stored indices (the form channel shuffles are normalised to)."""

    def propagate(self, node, ctx) -> None:
        track = ctx.track(node.inputs[0])
        if track is None:
            return
        indices = ctx.constant(node.inputs[1])
        if indices is None:
            raise Unsupported("its indices are computed at run time")
        axis = normalize_axis(int(node.attrs.get("axis", 0)), rank_of(node.inputs[0], ctx))
        if axis == track.axis:
            if indices.ndim != 1:
                raise Unsupported("it picks channels with indices that are not a 1-D list")
            ctx.set_track(node.outputs[0], axis, track.ids[indices.astype(np.int64)])
        elif axis < track.axis:
            ctx.set_track(node.outputs[0], track.axis - 1 + indices.ndim, track.ids)
        else:
            ctx.set_track(node.outputs[0], track.axis, track.ids)

    def rewrite(self, node, sctx) -> None:
        kept_in = sctx.kept(node.inputs[0])
        if kept_in is None:
            return
        axis = normalize_axis(int(node.attrs.get("axis", 0)), sctx.rank(node.inputs[0]))
        if axis != sctx.analysis_track(node.inputs[0]).axis:
            return
        kept_out = sctx.analysis.kept_positions(node.outputs[0].name, sctx.keep)
        indices = np.asarray(sctx.constant(node.inputs[1])).astype(np.int64) % len(kept_in)
        sctx.set_constant(node, 1, new_positions(kept_in)[indices[kept_out]].astype(np.int64))
