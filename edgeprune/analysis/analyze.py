"""Channel analysis: walk the graph once, track where every channel goes, and group coupled channels."""

from __future__ import annotations

import math
from collections import defaultdict
from types import MappingProxyType

import numpy as np

from edgeprune.analysis.context import AnalysisContext, Unsupported
from edgeprune.analysis.groups import ChannelAnalysis, ChannelGroup, FrozenReason, TensorChannels
from edgeprune.analysis.unionfind import UnionFind
from edgeprune.graph.model import ModelGraph
from edgeprune.ops.registry import rule_for

_INPUT = FrozenReason("(graph input)", "Input", "a model's input channels are its contract")
_OUTPUT = FrozenReason("(graph output)", "Output", "a model's output channels are its contract")


def analyze(model: ModelGraph) -> ChannelAnalysis:
    """Find every group of coupled channels, and freeze those touching anything we do not understand."""
    graph = model.gs_graph()
    ctx = AnalysisContext(model.opset)
    for tensor in graph.inputs:
        if _has_channels(tensor.shape):
            ctx.frozen.append((ctx.new_space(None, tensor, 1, int(tensor.shape[1])), _INPUT))
    for node in graph.nodes:
        rule = rule_for(node.op, node.domain or "")
        try:
            if rule is None:
                raise Unsupported(f"op {node.op} is not in the channel-semantics table")
            rule.propagate(node, ctx)
        except Unsupported as exc:
            _freeze_node(node, ctx, str(exc))
    for tensor in graph.outputs:
        track = ctx.track(tensor)
        if track is not None:
            ctx.frozen.append((track.ids, _OUTPUT))
    return _build(ctx, model.source_sha256)


def _has_channels(shape) -> bool:
    return bool(shape is not None and len(shape) >= 2 and isinstance(shape[1], (int, np.integer)) and shape[1] > 0)


def _freeze_node(node, ctx: AnalysisContext, reason: str) -> None:
    """Deny by default: the inputs' groups freeze, and the outputs start fresh, frozen channels.

    An output of the same rank as a tracked input keeps that input's channel axis (axis 3 of a
    channels-last N,H,W,C map), so what follows still sees its channels where they are; other outputs
    take axis 1.
    """
    tracked = [track for track in (ctx.track(t) for t in node.inputs) if track is not None]
    for track in tracked:
        ctx.freeze(track.ids, node, reason)
    for tensor in node.outputs:
        ctx.tracks.pop(tensor.name, None)
        axis = _output_axis(tensor.shape, node.inputs, ctx)
        if axis is not None:
            ctx.freeze(ctx.new_space(None, tensor, axis, int(tensor.shape[axis])), node, reason)


def _output_axis(shape, inputs, ctx: AnalysisContext) -> int | None:
    for tensor in inputs:
        track = ctx.track(tensor)
        in_shape = ctx.shape(tensor)
        if track is not None and shape is not None and in_shape is not None and len(in_shape) == len(shape):
            extent = shape[track.axis]
            if isinstance(extent, (int, np.integer)) and extent > 0:
                return track.axis
    return 1 if _has_channels(shape) else None


def _build(ctx: AnalysisContext, sha256: str) -> ChannelAnalysis:
    roots = ctx.uf.roots()
    space_sets = UnionFind()
    space_sets.allocate(len(ctx.spaces))
    space_of = np.asarray(ctx.space_of_id, dtype=np.int64)
    for channel, root in enumerate(roots.tolist()):
        space_sets.union(int(space_of[channel]), int(space_of[root]))
    component = space_sets.roots()[space_of]  # per channel id: its group's root space
    unique_roots, class_of_id = np.unique(roots, return_inverse=True)  # classes in topological order
    class_component = component[unique_roots]
    group_roots = list(dict.fromkeys(class_component.tolist()))
    group_pos = {root: pos for pos, root in enumerate(group_roots)}
    class_group = np.array([group_pos[c] for c in class_component.tolist()], dtype=np.int64)
    class_index = np.zeros(len(unique_roots), dtype=np.int64)
    for pos in range(len(group_roots)):
        members = np.flatnonzero(class_group == pos)
        class_index[members] = np.arange(len(members))
    tensors = {name: TensorChannels(track.axis, class_of_id[track.ids]) for name, track in ctx.tracks.items()}
    groups = _describe_groups(ctx, group_roots, class_group, class_index, class_of_id, tensors)
    by_id = MappingProxyType({group.id: pos for pos, group in enumerate(groups)})
    group_members = [np.zeros(g.channels, dtype=np.int64) for g in groups]
    for global_class, (pos, local) in enumerate(zip(class_group.tolist(), class_index.tolist())):
        group_members[pos][local] = global_class
    return ChannelAnalysis(
        groups=tuple(groups),
        tensors=MappingProxyType(tensors),
        class_group=class_group,
        class_index=class_index,
        slices=tuple(ctx.slices),
        reducing_edges=tuple(ctx.reducing),
        model_sha256=sha256,
        _by_id=by_id,
        _members=tuple(group_members),
    )


def _describe_groups(ctx, group_roots, class_group, class_index, class_of_id, tensors) -> list[ChannelGroup]:
    count = len(group_roots)
    frozen: list[dict[FrozenReason, None]] = [{} for _ in range(count)]
    for ids, reason in ctx.frozen:
        for pos in np.unique(class_group[class_of_id[ids]]).tolist():
            frozen[pos][reason] = None
    multiple = [1] * count
    for node, ids, divisions in ctx.divisions:
        classes = class_of_id[ids]
        touched = np.unique(class_group[classes]).tolist()
        pos = int(touched[0])
        local = class_index[classes]
        width = int((class_group == pos).sum())
        if len(touched) > 1:
            for other in touched:
                frozen[other][FrozenReason(node, "Conv", "grouped conv reads channels of several groups at once")] = (
                    None
                )
        elif len(local) != width or not np.array_equal(local, np.arange(width)):
            frozen[pos][FrozenReason(node, "Conv", "grouped conv reads this group's channels out of order")] = None
        multiple[pos] = math.lcm(multiple[pos], divisions)
    members: list[dict[str, list[str]]] = [defaultdict(list) for _ in range(count)]
    for name, channels in tensors.items():
        for pos in np.unique(class_group[channels.classes]).tolist():
            members[pos]["tensors"].append(name)
    for node, tensor in ctx.reducing:
        for pos in np.unique(class_group[tensors[tensor].classes]).tolist():
            members[pos]["consumers"].append(node)
    for space in ctx.spaces:
        if space.node is not None and len(space.ids):
            members[int(class_group[class_of_id[space.ids[0]]])]["producers"].append(space.node)
    groups, used = [], set[str]()
    for pos, root in enumerate(group_roots):
        width = int((class_group == pos).sum())
        name = _group_name(ctx.spaces[root], used)
        reasons = tuple(frozen[pos])
        if not reasons and width < 2:
            reasons = (FrozenReason(ctx.spaces[root].node or name, "", "a single channel cannot be pruned"),)
        groups.append(
            ChannelGroup(
                id=name,
                channels=width,
                producers=tuple(dict.fromkeys(members[pos]["producers"])),
                consumers=tuple(dict.fromkeys(members[pos]["consumers"])),
                tensors=tuple(members[pos]["tensors"]),
                multiple=multiple[pos],
                frozen=reasons,
            )
        )
    return groups


def _group_name(space, used: set[str]) -> str:
    name = space.node or f"tensor:{space.name}"
    candidate, suffix = name, 1
    while candidate in used:
        suffix += 1
        candidate = f"{name}#{suffix}"
    used.add(candidate)
    return candidate
