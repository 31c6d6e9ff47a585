"""The kept-index map: for users who fine-tune in their own framework, which indices of each original
initializer (per axis) and of each channel-tracked tensor a plan keeps."""

from __future__ import annotations

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.surgery.plan import PruningPlan


def kept_index_map(model, analysis: ChannelAnalysis, plan: PruningPlan) -> dict[str, dict]:
    """``{"initializers": {name: {axis: [kept indices]}}, "tensors": {name: {"axis": a, "kept": [...]}}}``.

    Names are the original model's (after normalisation: BatchNorm folded into the convs). Only what
    the plan shrinks is listed: a name that is absent keeps every index, unless it belongs to a node of a
    removed residual block: ``"removed_blocks": {block id: [its nodes]}`` lists those, which are gone. A grouped conv's weight, whose
    input axis holds one group's channels, gives ``{"per_group": [[kept in group 0], [kept in group 1], ...]}``
    on that axis.
    """
    from edgeprune.surgery.depth import channel_kept, plan_blocks, removed_nodes

    _, removed = plan_blocks(model, analysis, plan)
    keep = analysis.keep_mask(channel_kept(plan.kept, removed))
    gone = removed_nodes(removed)
    nodes = {node.name: node for node in model.proto.graph.node if node.name not in gone}
    shapes = {init.name: tuple(init.dims) for init in model.proto.graph.initializer}
    initializers: dict[str, dict[str, object]] = {}
    for spec in analysis.slices:
        mask = analysis.kept_positions(spec.tensor, keep)
        node = nodes.get(spec.node)
        if mask is None or mask.all() or node is None or spec.input_index >= len(node.input):
            continue
        name = node.input[spec.input_index]
        if name not in shapes:
            continue
        length = shapes[name][spec.axis]
        if length != len(mask):  # a grouped conv's per-group axis: the kept positions within one group
            groups = len(mask) // length if length and len(mask) % length == 0 else 0
            if not groups:
                continue
            per_group = [np.flatnonzero(row).tolist() for row in mask.reshape(groups, length)]
            initializers.setdefault(name, {})[str(spec.axis)] = {"per_group": per_group}
            continue
        initializers.setdefault(name, {})[str(spec.axis)] = np.flatnonzero(mask).tolist()
    tensors = {}
    made_inside = {out for node in model.proto.graph.node if node.name in gone for out in node.output}
    for name, channels in analysis.tensors.items():
        mask = analysis.kept_positions(name, keep)
        if mask is not None and not mask.all() and name not in made_inside:
            tensors[name] = {"axis": channels.axis, "kept": np.flatnonzero(mask).tolist()}
    result: dict[str, dict] = {"initializers": initializers, "tensors": tensors}
    if removed:  # written only when there are some, like the plan's removed_blocks
        result["removed_blocks"] = {block.id: list(block.nodes) for block in removed}
    return result
