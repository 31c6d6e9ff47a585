"""Which kept-channel counts a group allows: its floor, the device alignment, equal grouped-conv segments."""

from __future__ import annotations

import math

import numpy as np

from edgeprune.analysis.groups import ChannelGroup


def step(group: ChannelGroup, alignment: int, fine: bool = False) -> int:
    """Kept counts must be multiples of this; a group too small for it can only keep everything.

    ``fine``: a group at most two steps wide, which the steps could only halve, takes half steps (still a
    multiple of its segments): the relaxed budget of `Selector` when the device's steps forbid the budget."""
    value = math.lcm(group.multiple, alignment)
    if value >= group.channels:
        return group.multiple
    if fine and 2 * value >= group.channels:
        half = math.lcm(group.multiple, max(alignment // 2, 1))
        return half if half < value else value
    return value


def valid_count(group: ChannelGroup, wanted: float, floor: float, alignment: int, fine: bool = False) -> int:
    """The smallest allowed count >= max(wanted, floor x channels), capped at the group's size."""
    unit = step(group, alignment, fine)
    least = max(wanted, floor * group.channels, 1)
    count = int(math.ceil(least / unit - 1e-9)) * unit
    return min(max(count, unit), group.channels)


def top_channels(group: ChannelGroup, scores: np.ndarray, count: int) -> tuple[int, ...]:
    """The ``count`` best-scored channels, equally many from each grouped-conv segment; ties keep the lower index."""
    segments = group.multiple
    per_segment = group.channels // segments
    take = count // segments
    kept: list[int] = []
    for segment in range(segments):
        local = scores[segment * per_segment : (segment + 1) * per_segment]
        order = np.lexsort((np.arange(per_segment), -local))[:take]
        kept.extend(int(segment * per_segment + i) for i in order)
    return tuple(sorted(kept))
