"""Helpers shared by the op rules."""

from __future__ import annotations

import numpy as np


class Unsupported(Exception):
    """Raised by a rule: the op is used in a way whose channel semantics we do not know. The analysis
    turns it into frozen groups, so an op used in a way its rule does not understand never prunes."""


def normalize_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def rank_of(tensor, ctx) -> int:
    values = ctx.constant(tensor)
    if values is not None:
        return values.ndim
    shape = ctx.shape(tensor)
    if shape is None:
        raise Unsupported(f"the rank of {tensor.name} is unknown")
    return len(shape)


def int_list(values) -> list[int]:
    return [int(v) for v in np.asarray(values).reshape(-1)]


def axes_of(node, ctx, input_index: int, attr: str = "axes") -> list[int] | None:
    """An op's axes, from its attribute (old opsets) or its constant input (new opsets)."""
    if attr in node.attrs:
        return int_list(node.attrs[attr])
    if len(node.inputs) > input_index and node.inputs[input_index].name:
        values = ctx.constant(node.inputs[input_index])
        if values is None:
            raise Unsupported(f"its {attr} are computed at run time")
        return int_list(values)
    return None


def passthrough(node, ctx) -> None:
    """Every output carries the first input's channels unchanged (a channel-wise op)."""
    track = ctx.track(node.inputs[0]) if node.inputs else None
    if track is None:
        return
    for out in node.outputs:
        if out.name:
            ctx.set_track(out, track.axis, track.ids)


def new_positions(kept: np.ndarray) -> np.ndarray:
    """For each old position, its index after pruning (-1 where removed)."""
    return np.where(kept, np.cumsum(kept) - 1, -1)
