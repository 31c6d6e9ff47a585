"""The parts of a channel group that must each keep channels: what a Split, a Slice or a grouped conv reads alone.

A Split or a Slice hands one of its outputs only some of a group's channels, and surgery refuses a plan that
empties a tensor; a grouped conv reads its input in equal slices. Cutting the group wherever one of its
tensors starts or stops holding channels (and at its grouped-conv slices) gives pieces that every tensor
holds whole or not at all, so a plan keeping some channels of every piece never empties a tensor.
"""

from __future__ import annotations

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis, ChannelGroup


def group_pieces(analysis: ChannelAnalysis, group: ChannelGroup) -> tuple[np.ndarray, ...]:
    """The group's channel indices split into pieces (each sorted, in order of their first channel): two
    channels share a piece when every tensor of the group holds both or neither, and they lie in the same
    grouped-conv slice (``group.multiple`` consecutive equal slices)."""
    position = analysis.group_index(group.id)
    channels = group.channels
    label = np.arange(channels, dtype=np.int64) * group.multiple // channels  # the grouped-conv slice
    for name in group.tensors:
        classes = analysis.tensors[name].classes
        mine = classes[analysis.class_group[classes] == position]
        held = np.zeros(channels, dtype=bool)
        held[analysis.class_index[mine]] = True
        if held.all():
            continue
        _, label = np.unique(label * 2 + held, return_inverse=True)  # refine: split each piece by `held`
        label = label.reshape(-1)
    order = np.argsort(label, kind="stable")
    bounds = np.flatnonzero(np.diff(label[order])) + 1
    pieces = np.split(order, bounds)
    return tuple(sorted((np.sort(p) for p in pieces), key=lambda p: int(p[0])))


def share_of_pieces(sizes: list[int], count: int) -> list[int]:
    """``count`` channels dealt to pieces of ``sizes`` in proportion, each at least one and at most its size
    (largest remainders first; ``len(sizes) <= count <= sum(sizes)``)."""
    total = sum(sizes)
    quota = [count * size / total for size in sizes]
    share = [min(size, max(1, int(q))) for size, q in zip(sizes, quota)]
    while sum(share) < count:
        i = max((i for i in range(len(sizes)) if share[i] < sizes[i]), key=lambda i: quota[i] - share[i])
        share[i] += 1
    while sum(share) > count:
        i = min((i for i in range(len(sizes)) if share[i] > 1), key=lambda i: quota[i] - share[i])
        share[i] -= 1
    return share
