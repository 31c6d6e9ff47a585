"""The order of a reconstruction: each layer's level (the pass its rows come from), where the inputs still
hold the original values, and the sites a layer's rows are sampled at."""

from __future__ import annotations

import numpy as np

from edgeprune.capture.references import site_positions
from edgeprune.reconstruct.targets import Target


def levels(targets: list[Target], graph) -> list[int]:
    """Each target's level: refitting level by level gives the fits of refitting one by one in ``targets``'
    (topological) order, where a layer sees every earlier one refitted and no later one.

    A target's level is one more than that of every earlier target its input or its shortcut depends on,
    and lower than that of every later target its shortcut depends on (a residual block's projection is
    fitted to the sum minus the other branch as it stands before that branch is refitted)."""
    index = {t.node: i for i, t in enumerate(targets)}
    upstream: dict[str, int] = {}  # tensor -> bit set of the targets it depends on
    for node in graph.nodes:
        bits = 0
        for tensor in node.inputs:
            bits |= upstream.get(tensor.name, 0)
        if node.name in index:
            bits |= 1 << index[node.name]
        for tensor in node.outputs:
            upstream[tensor.name] = bits
    level = [0] * len(targets)
    floor = [0] * len(targets)  # from earlier targets whose shortcut reads this one
    for i, target in enumerate(targets):
        bits = upstream.get(target.input, 0) | upstream.get(target.addend or "", 0)
        bits &= ~(1 << i)
        earlier = [j for j in _members(bits) if j < i]
        level[i] = max([floor[i]] + [level[j] + 1 for j in earlier])
        for j in _members(bits):
            if j > i:
                floor[j] = max(floor[j], level[i] + 1)
    return level


def _members(bits: int) -> list[int]:
    found, position = [], 0
    while bits:
        if bits & 1:
            found.append(position)
        bits >>= 1
        position += 1
    return found


def changed_tensors(graph, lost: set[str]) -> set[str]:
    """Tensors of ``graph`` whose values differ from the original model's on their kept channels: the
    outputs of layers that lost inputs, and everything after them."""
    changed: set[str] = set()
    for node in graph.nodes:
        if node.name in lost or any(t.name in changed for t in node.inputs):
            changed.update(t.name for t in node.outputs)
    return changed


def sites(target: Target, shape, count: int, per_image: int, seed: int) -> np.ndarray | None:
    """Sampled (image, y, x) output sites of a conv, (image, site, 0) input rows of a channels-last MatMul."""
    return site_positions(shape, target.layout, count, per_image, seed)
