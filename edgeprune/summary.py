"""A model described as plain data: what `inspect` prints and writes as JSON."""

from __future__ import annotations

from collections import Counter

from edgeprune.analysis.groups import ChannelAnalysis, ChannelGroup
from edgeprune.cost.counts import CostSummary
from edgeprune.graph.model import ModelGraph


def describe_group(group: ChannelGroup) -> dict:
    return {
        "id": group.id,
        "channels": group.channels,
        "multiple": group.multiple,
        "prunable": group.prunable,
        "producers": list(group.producers),
        "consumers": list(group.consumers),
        "frozen": [{"node": r.node, "op": r.op, "reason": r.reason} for r in group.frozen],
    }


def describe_model(model: ModelGraph, analysis: ChannelAnalysis, cost: CostSummary) -> dict:
    def tensor(name: str) -> dict:
        shape = [d if d is not None else "?" for d in model.shapes.get(name, ())]
        dtype = model.dtypes.get(name)
        return {"name": name, "shape": shape, "dtype": str(dtype) if dtype is not None else "?"}

    groups = [g for g in analysis.groups if g.producers]
    return {
        "model": model.source_path,
        "sha256": model.source_sha256,
        "opset": model.opset,
        "inputs": [tensor(n) for n in model.input_names],
        "outputs": [tensor(n) for n in model.output_names],
        "ops": dict(sorted(Counter(n.op_type for n in model.proto.graph.node).items())),
        "normalisation": list(model.notes),
        "cost": cost.to_dict(),
        "groups": [describe_group(g) for g in groups],
        "prunable_groups": sum(g.prunable for g in groups),
        "frozen_groups": sum(not g.prunable for g in groups),
        **describe_blocks(model, analysis),
    }


def describe_blocks(model: ModelGraph, analysis: ChannelAnalysis) -> dict:
    """The residual blocks depth pruning may remove (nodes, MACs), and every other residual join with why not."""
    from edgeprune.analysis.blocks import find_blocks

    blocks = find_blocks(model, analysis)
    return {
        "blocks": [block.to_dict() for block in blocks.blocks],
        "residual_joins_not_removable": [join.to_dict() for join in blocks.rejected],
    }
