"""Residual blocks that can be removed whole: depth pruning (docs/results-depth.md).

A residual join is an Add of two feature maps of one shape. It is a *removable block* when one operand is
the block's input itself (an identity shortcut) and the other a branch computed from that input alone,
whose nodes are read only inside the branch: the block computes ``x + branch(x)``, so without the branch
it computes ``x``, and the Add's readers can read ``x`` instead without any shape changing. A join whose
shortcut passes through a layer (a projection that changes width or resolution), whose branch also reads
something from before the block, or whose branch is read outside it, is not removable; `find_blocks` says
which and why.

The channel groups that live only inside a branch are the block's *internal groups*: a plan that empties
all of them (keeps no channel) removes the block, which is how strategies and the plan cost model price
depth (the branch's layers then cost no MACs and, on the latency model, no time).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.graph.model import ModelGraph

LAYER_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class ResidualBlock:
    """``id``: the Add's node name. Removing the block makes the Add's readers read ``shortcut`` (its input
    ``shortcut_index``); ``nodes`` (the branch, in graph order, then the Add) disappear. ``stage`` is the
    channel group the Add joins; ``macs`` the branch's MACs per image (None at an unknown input size)."""

    id: str
    shortcut: str
    shortcut_index: int
    output: str
    nodes: tuple[str, ...]
    layers: tuple[str, ...]
    internal_groups: tuple[str, ...]
    stage: str
    macs: int | None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "shortcut": self.shortcut,
            "stage": self.stage,
            "nodes": list(self.nodes),
            "layers": len(self.layers),
            "macs": self.macs,
            "internal_groups": list(self.internal_groups),
        }


@dataclass(frozen=True)
class NotRemovable:
    """A residual join that cannot be removed, and why."""

    id: str
    stage: str
    reason: str

    def to_dict(self) -> dict:
        return {"id": self.id, "stage": self.stage, "reason": self.reason}


@dataclass(frozen=True)
class BlockAnalysis:
    """``joins``: every residual join as (id, stage), in graph order."""

    blocks: tuple[ResidualBlock, ...]
    rejected: tuple[NotRemovable, ...]
    joins: tuple[tuple[str, str], ...] = ()

    def block(self, block_id: str) -> ResidualBlock:
        for block in self.blocks:
            if block.id == block_id:
                return block
        raise KeyError(block_id)

    def reason(self, block_id: str) -> str | None:
        """Why ``block_id`` is not removable (None: it is, or it is no residual join at all)."""
        return next((r.reason for r in self.rejected if r.id == block_id), None)

    @property
    def stages(self) -> Mapping[str, tuple[str, ...]]:
        """Per stage (the channel group a chain of residual joins adds into), every join on it, removable or not."""
        stages: dict[str, list[str]] = {}
        for join, stage in self.joins:
            if stage:
                stages.setdefault(stage, []).append(join)
        return {stage: tuple(joins) for stage, joins in stages.items()}


class _Graph:
    """Producers, readers and positions of a normalised graph (its nodes are in topological order)."""

    def __init__(self, model: ModelGraph) -> None:
        graph = model.proto.graph
        self.nodes = list(graph.node)
        self.constants = {t.name for t in graph.initializer}
        self.inputs = {t.name for t in graph.input}
        self.outputs = {t.name for t in graph.output}
        self.producer = {out: i for i, node in enumerate(self.nodes) for out in node.output}
        self.readers: dict[str, list[int]] = {}
        for i, node in enumerate(self.nodes):
            for name in node.input:
                self.readers.setdefault(name, []).append(i)
        self.shapes = model.shapes

    def feature_inputs(self, node) -> list[str]:
        """The inputs that are computed tensors (not stored weights, not empty)."""
        return [name for name in node.input if name and name not in self.constants]

    def ancestors(self, tensor: str, stop: str | None = None) -> tuple[set[int], bool, str | None]:
        """The nodes computing ``tensor``, walking back to ``stop`` (excluded): (those nodes, whether ``stop``
        was reached, the first graph input they read other than ``stop``)."""
        seen: set[int] = set()
        frontier, reached, escaped = [tensor], False, None
        while frontier:
            name = frontier.pop()
            if name == stop:
                reached = True
                continue
            index = self.producer.get(name)
            if index is None:
                escaped = escaped or name
            elif index not in seen:
                seen.add(index)
                frontier.extend(self.feature_inputs(self.nodes[index]))
        return seen, reached, escaped


def find_blocks(model: ModelGraph, analysis: ChannelAnalysis) -> BlockAnalysis:
    """Every residual join of the model: the removable blocks, and the others with the reason."""
    g = _Graph(model)
    macs = _node_macs(model)
    blocks, rejected, joins = [], [], []
    for index, node in enumerate(g.nodes):
        operands = g.feature_inputs(node)
        if node.op_type != "Add" or len(node.input) != 2 or len(operands) != 2:
            continue  # a bias or a constant added: no join of two maps
        shapes = [g.shapes.get(name) for name in operands]
        if any(s is None or len(s) < 3 for s in shapes):
            continue  # not feature maps (or of unknown rank)
        stage = _stage(analysis, node.output[0])
        joins.append((node.name, stage))
        if shapes[0] != shapes[1]:
            rejected.append(NotRemovable(node.name, stage, "it adds maps of different shapes (a broadcast)"))
            continue
        found = _branch(g, index)
        if isinstance(found, str):
            rejected.append(NotRemovable(node.name, stage, found))
            continue
        shortcut_index, branch = found
        names = tuple(g.nodes[i].name for i in sorted(branch))
        layers = tuple(g.nodes[i].name for i in sorted(branch) if g.nodes[i].op_type in LAYER_OPS)
        if not layers:  # x + f(x) with no layer in f: an activation's arithmetic (a tanh GELU), no block
            joins.pop()
            continue
        produced = {out for i in branch for out in g.nodes[i].output}
        blocks.append(
            ResidualBlock(
                id=node.name,
                shortcut=node.input[shortcut_index],
                shortcut_index=shortcut_index,
                output=node.output[0],
                nodes=names + (node.name,),
                layers=layers,
                internal_groups=_internal_groups(analysis, produced),
                stage=stage,
                macs=None if macs is None else sum(macs.get(name, 0) for name in names),
            )
        )
    return BlockAnalysis(tuple(blocks), tuple(rejected), tuple(joins))


def _branch(g: _Graph, index: int) -> tuple[int, set[int]] | str:
    """(which input is the shortcut, the branch's nodes) of the Add at ``index``, or why it is not removable."""
    add = g.nodes[index]
    if add.output[0] in g.outputs:
        return "its output is a model output"
    if add.input[0] == add.input[1]:
        return "it adds a map to itself"
    for shortcut_index in (0, 1):
        shortcut, branch_out = add.input[shortcut_index], add.input[1 - shortcut_index]
        nodes, reached, escaped = g.ancestors(branch_out, shortcut)
        if not reached:
            continue  # this operand is no input of the other: not the shortcut
        before = _before(g, nodes, shortcut, escaped)
        if before is not None:
            return f"the branch also reads {before}, from before the block"
        return _leak(g, nodes, index) or (shortcut_index, nodes)
    return _projection(g, add)


def _before(g: _Graph, nodes: set[int], shortcut: str, escaped: str | None) -> str | None:
    """A tensor the branch reads that is neither the shortcut nor made inside the branch (None: none)."""
    if escaped is not None:
        return escaped
    earlier = g.ancestors(shortcut)[0]
    if not nodes & earlier:
        return None
    for i in sorted(nodes - earlier):
        for name in g.feature_inputs(g.nodes[i]):
            if g.producer.get(name) in earlier:
                return name
    return g.nodes[min(nodes & earlier)].output[0]


def _leak(g: _Graph, nodes: set[int], add: int) -> str | None:
    """Why the branch cannot go (a value of it read outside, or a model output), or None."""
    for i in sorted(nodes):
        for out in g.nodes[i].output:
            if out in g.outputs:
                return f"the branch's {out} is a model output"
            outside = [r for r in g.readers.get(out, ()) if r not in nodes and r != add]
            if outside:
                return f"the branch's {out} is also read by {g.nodes[outside[0]].name}, outside the block"
    return None


def _projection(g: _Graph, add) -> str:
    """The reason for a join whose operands both pass through layers: name the shortcut's first layer."""
    sides = [g.ancestors(name)[0] for name in add.input]
    common = sides[0] & sides[1]
    if not common:
        return "its operands are computed from different inputs: no residual shortcut"
    fork = max(common)  # the last node both operands come from
    shortcut = min((s - common for s in sides), key=len)
    first = g.nodes[min(shortcut)] if shortcut else g.nodes[fork]
    return (
        f"the shortcut is not the identity: it passes through {first.name} ({first.op_type}), "
        "a projection that changes width or resolution"
    )


def _stage(analysis: ChannelAnalysis, tensor: str) -> str:
    channels = analysis.tensors.get(tensor)
    if channels is None or not len(channels.classes):
        return ""
    return analysis.groups[int(analysis.class_group[int(channels.classes[0])])].id


def _internal_groups(analysis: ChannelAnalysis, produced: set[str]) -> tuple[str, ...]:
    """Groups all of whose tensors are made inside the branch."""
    return tuple(g.id for g in analysis.groups if g.tensors and all(t in produced for t in g.tensors))


def _node_macs(model: ModelGraph) -> dict[str, int] | None:
    """MACs per image of every weighted layer (as `edgeprune.cost` counts them), None at an unknown size."""
    weights = {t.name: tuple(t.dims) for t in model.proto.graph.initializer}
    macs = {}
    for node in model.proto.graph.node:
        if node.op_type not in LAYER_OPS or len(node.input) < 2 or node.input[1] not in weights:
            continue
        out = model.shapes.get(node.output[0])
        if out is None or not all(isinstance(d, int) and d > 0 for d in out[1:]):
            return None
        weight = math.prod(weights[node.input[1]])
        if node.op_type in ("Conv", "ConvTranspose"):
            spatial = out[2:] if node.op_type == "Conv" else model.shapes.get(node.input[0], (0, 0))[2:]
            macs[node.name] = weight * _product(spatial)
        else:  # Gemm, MatMul: one weight product per row of the output
            macs[node.name] = weight * _product(out[1:-1])
    return macs


def _product(dims) -> int:
    return math.prod(d if isinstance(d, int) and d > 0 else 1 for d in dims)


def removed_positions(analysis: ChannelAnalysis, blocks: tuple[ResidualBlock, ...]) -> np.ndarray:
    """Bool per channel class: True for the classes of the given blocks' internal groups."""
    mask = np.zeros(len(analysis.class_group), dtype=bool)
    for block in blocks:
        for group_id in block.internal_groups:
            mask[analysis.members(group_id)] = True
    return mask
