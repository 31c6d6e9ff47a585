"""Which layers reconstruction refits, and what each one is fitted to.

A target is a Conv (explicit pads), a Gemm (no transA) or a MatMul by a stored 2-D matrix. A MatMul is the
Linear layer of a channels-last block (an N,H,W,C map: ConvNeXt's MLP) or of a head; torch exports
``nn.Linear`` there as MatMul followed by an Add of its bias, so the pair is refitted together: the fit
matches the Add's output and its bias goes into the Add's constant. A MatMul with no such Add is fitted
with no bias at all, since it has nowhere to put one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.capture.references import SiteTensor
from edgeprune.capture.rows import ConvGeometry
from edgeprune.graph.model import ModelGraph

SKIP_NOTE = "not refitted: only Conv (explicit pads), Gemm and MatMul by a stored matrix are"


@dataclass
class Target:
    node: str
    op: str
    input: str
    output: str
    kept_out: np.ndarray
    geometry: ConvGeometry | None
    rectified: bool = False  # what follows is a ReLU: negative targets need only stay negative
    addend: str | None = None  # the output is added to this tensor (a residual shortcut) before anything else
    reference: str = ""  # the original tensor to match: the output itself, the bias Add's, or the residual sum
    bias_add: str | None = None  # a MatMul's bias: the Add after it ...
    bias_index: int = -1  # ... and which of that Add's inputs is the constant; -1: a MatMul with no bias
    positions: np.ndarray | None = None
    y_rows: list | None = None

    @property
    def channels_last(self) -> bool:
        """A MatMul's features are on the last axis; a Conv's and a Gemm's on axis 1."""
        return self.op == "MatMul"

    @property
    def intercept(self) -> bool:
        return self.op != "MatMul" or self.bias_add is not None

    @property
    def layout(self) -> str:
        """How its rows are cut (`capture.references.LAYOUTS`): a conv's sampled output sites, a channels-last
        MatMul's sampled input rows, or a Gemm's one row per image."""
        return "map" if self.geometry is not None else "last" if self.channels_last else "rows"


def find_targets(original: ModelGraph, analysis: ChannelAnalysis, keep: np.ndarray, scope: str):
    """(targets in topological order, LayerRefit-ready notes of the layers that cannot be refitted)."""
    weights = {t.name: t for t in original.proto.graph.initializer}
    lost = {node for node, tensor in analysis.reducing_edges if not _all_kept(analysis, tensor, keep)}
    readers = _readers(original)
    chosen = lost if scope == "lost" else _downstream(original, lost, readers)
    targets, skipped = [], []
    for node in original.proto.graph.node:
        if node.name not in chosen or (node.name not in lost and not _refittable(node, weights)):
            continue
        attrs = {a.name: _attr(a) for a in node.attribute}
        if node.name not in lost and attrs.get("group", 1) != 1:
            continue  # a grouped or depthwise conv mixes no channels: the convs after it correct its drift
        weight = weights.get(node.input[1]) if len(node.input) > 1 else None
        kept_out = analysis.kept_positions(node.output[0], keep)
        if kept_out is None and weight is not None and node.name not in lost:
            kept_out = np.ones(_output_channels(node, attrs, weight), dtype=bool)  # an untracked output keeps all
        geometry = ConvGeometry.of(attrs, tuple(weight.dims)) if node.op_type == "Conv" and weight else None
        if weight is None or kept_out is None or not _usable(node, attrs, weight, geometry):
            skipped.append((node.name, node.op_type, SKIP_NOTE))
            continue
        target = Target(node.name, node.op_type, node.input[0], node.output[0], kept_out, geometry)
        if node.op_type == "MatMul":
            target.bias_add, target.bias_index, target.reference = _bias_add(node, readers, weights)
        else:
            target.addend, target.reference = _residual(original, node, readers)
        target.rectified = _only_relu(readers.get(target.reference, ()))
        targets.append(target)
    return targets, skipped


def reference_tensors(original: ModelGraph, analysis: ChannelAnalysis) -> list[SiteTensor]:
    """The original tensors every plan's targets are fitted to, or a superset: those of the targets of a
    plan that cuts every group (each of concrete size past the batch, so its sites can be drawn first)."""
    targets, _ = find_targets(original, analysis, np.zeros(len(analysis.class_group), dtype=bool), "downstream")
    found: dict[str, SiteTensor] = {}
    for target in targets:
        shape = original.shapes.get(target.reference, ())
        if shape and all(isinstance(d, int) and d > 0 for d in shape[1:]):
            found.setdefault(target.reference, SiteTensor(target.reference, target.layout))
    return list(found.values())


def _all_kept(analysis: ChannelAnalysis, tensor: str, keep: np.ndarray) -> bool:
    kept = analysis.kept_positions(tensor, keep)  # a reducing edge's tensor is always tracked
    return kept is None or bool(kept.all())


def _refittable(node, weights) -> bool:
    """A layer whose inputs only drifted is refitted when it mixes channels with stored weights."""
    if node.op_type in ("Conv", "Gemm"):
        return True
    return node.op_type == "MatMul" and len(node.input) > 1 and node.input[1] in weights


def _usable(node, attrs, weight, geometry) -> bool:
    if node.op_type == "Conv":
        return geometry is not None
    if node.op_type == "Gemm":
        return not attrs.get("transA", 0)
    return node.op_type == "MatMul" and len(weight.dims) == 2


def _bias_add(node, readers, weights) -> tuple[str | None, int, str]:
    """The Add that carries a MatMul's bias: its only reader, adding a stored vector along the last axis.
    Returns (that Add, the constant's input index, the tensor to match), or (None, -1, the MatMul's output)."""
    output = node.output[0]
    after = readers.get(output, ())
    if len(after) != 1 or after[0].op_type != "Add" or len(after[0].input) != 2:
        return None, -1, output
    add = after[0]
    index = 1 if add.input[0] == output else 0
    constant = weights.get(add.input[index])
    features = int(weights[node.input[1]].dims[1])
    dims = tuple(constant.dims) if constant is not None else ()
    if add.input[1 - index] != output or not dims or dims[-1] != features or any(d != 1 for d in dims[:-1]):
        return None, -1, output
    return add.name, index, add.output[0]


def _residual(original: ModelGraph, node, readers) -> tuple[str | None, str]:
    """A conv whose only reader is an Add with a tensor of its own shape (a residual block's last conv) is
    fitted to the original sum minus the other operand's current values: it then also corrects the drift
    that the shortcut carries. Returns (addend, tensor to match)."""
    output = node.output[0]
    after = readers.get(output, ())
    if node.op_type != "Conv" or len(after) != 1 or after[0].op_type != "Add" or len(after[0].input) != 2:
        return None, output
    other = [name for name in after[0].input if name != output]
    if len(other) != 1 or original.shapes.get(other[0]) != original.shapes.get(output):
        return None, output
    return other[0], after[0].output[0]


def _only_relu(readers) -> bool:
    return bool(readers) and all(reader.op_type == "Relu" for reader in readers)


def _readers(original: ModelGraph) -> dict[str, list]:
    readers: dict[str, list] = {}
    for node in original.proto.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def _downstream(original: ModelGraph, lost: set[str], readers: dict[str, list]) -> set[str]:
    """``lost`` and every node that reads, directly or not, the output of one of them."""
    reached, frontier = set(lost), [n for n in original.proto.graph.node if n.name in lost]
    while frontier:
        node = frontier.pop()
        for output in node.output:
            for reader in readers.get(output, ()):
                if reader.name not in reached:
                    reached.add(reader.name)
                    frontier.append(reader)
    return reached


def _output_channels(node, attrs, weight) -> int:
    if node.op_type == "MatMul" or (node.op_type == "Gemm" and not attrs.get("transB", 0)):
        return int(weight.dims[1])
    return int(weight.dims[0])


def _attr(attribute):
    import onnx

    return onnx.helper.get_attribute_value(attribute)
