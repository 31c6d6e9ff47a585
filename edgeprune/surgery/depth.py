"""Depth surgery: removing whole residual blocks (docs/results-depth.md).

A plan removes a block by naming it in ``removed_blocks`` or by keeping no channel of any group inside it
(`resolve_blocks` reads both). Surgery cuts the plan's channels first, in the original model's groups, and
then bypasses the removed blocks: each removed Add's readers read its shortcut, and the branch, left with no
reader, is dropped by the graph's cleanup. The proof stays the channel proof plus one term: the masked
original zeroes each removed branch where it enters its Add (`surgery.mask`), and ``x + 0 * branch`` is
``x`` exactly. Cutting channels first keeps one channel analysis for the whole plan; the groups inside a
removed block are left whole by the cut, since their nodes are dropped anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from edgeprune.analysis.blocks import BlockAnalysis, ResidualBlock
from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.errors import InputError
from edgeprune.graph.load import export_clean
from edgeprune.graph.model import ModelGraph
from edgeprune.surgery.plan import PruningPlan

Kept = Mapping[str, tuple[int, ...]]


def resolve_blocks(plan: PruningPlan, blocks: BlockAnalysis, stage_keep: int = 0) -> tuple[ResidualBlock, ...]:
    """The blocks ``plan`` removes, in graph order: those it names and those whose groups it empties.

    Raises InputError for a named block that is not removable (with the reason), a block emptied only in
    part, and, with ``stage_keep`` > 0, a plan that leaves a stage fewer residual blocks than that."""
    named = {_named(blocks, block_id).id for block_id in plan.removed_blocks}
    emptied = {gid for gid, indices in plan.kept.items() if len(indices) == 0}
    implied = {b.id for b in blocks.blocks if b.internal_groups and set(b.internal_groups) <= emptied}
    removed = tuple(b for b in blocks.blocks if b.id in named | implied)
    inside = inside_groups(removed)
    for group_id in sorted(emptied - inside):
        partial = next((b for b in blocks.blocks if group_id in b.internal_groups), None)
        if partial is not None:
            raise InputError(
                f"plan entry for group '{group_id}' keeps no channel: to remove block '{partial.id}', empty every "
                f"group inside it ({', '.join(partial.internal_groups)}) or name it in removed_blocks"
            )
    if stage_keep > 0:
        check_stages(blocks, {b.id for b in removed}, stage_keep)
    return removed


def _named(blocks: BlockAnalysis, block_id: str) -> ResidualBlock:
    try:
        return blocks.block(block_id)
    except KeyError:
        pass
    reason = blocks.reason(block_id)
    if reason is not None:
        raise InputError(f"the plan removes block '{block_id}', which cannot be removed: {reason}")
    raise InputError(
        f"the plan removes block '{block_id}', which is no residual block of this model; "
        "`edgeprune inspect` lists the removable ones"
    )


def check_stages(blocks: BlockAnalysis, removed: Iterable[str], stage_keep: int) -> None:
    """Every stage keeps at least ``stage_keep`` of its residual blocks (all of them when it has fewer)."""
    gone = set(removed)
    for stage, joins in blocks.stages.items():
        left = [j for j in joins if j not in gone]
        if len(left) < min(stage_keep, len(joins)):
            taken = [j for j in joins if j in gone]
            what = "every residual block" if not left else f"{len(taken)} of the {len(joins)} residual blocks"
            raise InputError(
                f"the plan removes {what} of stage '{stage}' ({', '.join(taken)}), and the stage guard keeps at "
                f"least {stage_keep} (depth-stage-keep): keep one of them, or set depth-stage-keep to 0"
            )


def stage_allows(blocks: BlockAnalysis, removed: Iterable[str], candidate: ResidualBlock, stage_keep: int) -> bool:
    """Whether removing ``candidate`` as well still keeps ``stage_keep`` blocks in its stage."""
    try:
        check_stages(blocks, [*removed, candidate.id], stage_keep)
    except InputError:
        return False
    return True


def inside_groups(removed: Sequence[ResidualBlock]) -> set[str]:
    return {group_id for block in removed for group_id in block.internal_groups}


def channel_kept(kept: Kept, removed: Sequence[ResidualBlock]) -> dict[str, tuple[int, ...]]:
    """The channel part of a plan: without the entries of groups inside removed blocks (they stay whole)."""
    inside = inside_groups(removed)
    return {gid: tuple(indices) for gid, indices in kept.items() if gid not in inside}


def with_removed(kept: Kept, removed: Sequence[ResidualBlock]) -> dict[str, tuple[int, ...]]:
    """``kept`` with every group inside the removed blocks emptied: what prices the blocks as gone."""
    return {**dict(kept), **{gid: () for gid in sorted(inside_groups(removed))}}


def bypass_graph(graph, removed: Sequence[ResidualBlock]) -> None:
    """Rewire an onnx-graphsurgeon graph in place: each removed Add's readers read its shortcut instead.

    The shortcut is the Add's input as it is now, so a chain of removed blocks ends at the first one's
    input; the branches and Adds keep no reader and go with the next ``cleanup``."""
    nodes = {node.name: node for node in graph.nodes}
    for block in removed:
        add = nodes.get(block.id)
        if add is None:
            continue
        shortcut, output = add.inputs[block.shortcut_index], add.outputs[0]
        for reader in list(output.outputs):
            for index, tensor in enumerate(reader.inputs):
                if tensor is output:
                    reader.inputs[index] = shortcut
        add.outputs.clear()


def bypassed_model(model: ModelGraph, removed: Sequence[ResidualBlock]) -> ModelGraph:
    """``model`` without the removed blocks (no channel cut): what the depth search measures."""
    graph = model.gs_graph()
    bypass_graph(graph, removed)
    proto = export_clean(graph)
    proto.producer_name, proto.producer_version = model.proto.producer_name, model.proto.producer_version
    return ModelGraph.from_proto(proto, source_sha256=model.source_sha256, notes=model.notes)


def aliases(removed: Sequence[ResidualBlock]) -> dict[str, str]:
    """Per removed Add output, the tensor its readers read once the blocks are gone (chains followed)."""
    alias: dict[str, str] = {}
    for block in removed:
        alias[block.output] = alias.get(block.shortcut, block.shortcut)
    return alias


def removed_nodes(removed: Sequence[ResidualBlock]) -> set[str]:
    return {name for block in removed for name in block.nodes}


def plan_blocks(model: ModelGraph, analysis: ChannelAnalysis, plan: PruningPlan, stage_keep: int = 0):
    """(the block analysis, the blocks ``plan`` removes) for a model and its channel analysis."""
    from edgeprune.analysis.blocks import find_blocks

    blocks = find_blocks(model, analysis)
    return blocks, resolve_blocks(plan, blocks, stage_keep)
