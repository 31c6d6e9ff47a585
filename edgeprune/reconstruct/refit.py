"""Reconstruction: refit each consumer of pruned channels so its output matches the original model's.

Consumers go in topological order and each one's inputs come from the already-pruned (and already
refitted) network, so the errors of earlier layers are corrected by later ones (He et al. 2017, ThiNet).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.capture.session import ActivationRunner
from edgeprune.graph.load import export_clean
from edgeprune.graph.model import ModelGraph
from edgeprune.reconstruct.rows import ConvGeometry, outputs_at, patches, sample_positions
from edgeprune.reconstruct.solve import rectified_fit, relative_error, ridge_fit
from edgeprune.surgery.plan import PruningPlan

logger = logging.getLogger(__name__)


SCOPES = ("downstream", "lost")


@dataclass(frozen=True)
class LayerRefit:
    node: str
    op: str
    rows: int
    columns: int
    error_before: float
    error_after: float
    applied: bool
    note: str = ""


@dataclass(frozen=True)
class ReconstructionReport:
    layers: tuple[LayerRefit, ...]
    images: int
    samples_per_image: int
    ridge: float

    def to_dict(self) -> dict:
        return {"images": self.images, "samples_per_image": self.samples_per_image, "ridge": self.ridge,
                "layers": [asdict(layer) for layer in self.layers]}


@dataclass
class _Target:
    node: str
    op: str
    input: str
    output: str
    kept_out: np.ndarray
    geometry: ConvGeometry | None
    rectified: bool = False  # what follows is a ReLU: negative targets need only stay negative
    addend: str | None = None  # the output is added to this tensor (a residual shortcut) before anything else
    reference: str = ""  # the original tensor to match: the output itself, or the residual sum
    positions: np.ndarray | None = None
    y_rows: list | None = None


def reconstruct(
    original: ModelGraph,
    pruned: ModelGraph,
    analysis: ChannelAnalysis,
    plan: PruningPlan,
    calibration,
    *,
    samples_per_image: int = 16,
    ridge: float = 1e-3,
    batch_size: int = 64,
    provider: str = "cpu",
    seed: int = 0,
    scope: str = "downstream",
) -> tuple[ModelGraph, ReconstructionReport]:
    """Refit layers of ``pruned`` so their outputs match ``original``'s on ``calibration``.

    ``scope`` "lost": only the layers that lost input channels. "downstream" (the default): also every
    other Conv/Gemm whose inputs changed because something before it was pruned or refitted, the
    classifier included, so the drift that passes through untouched layers is corrected too.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown reconstruction scope {scope!r}; valid: {', '.join(SCOPES)}")
    keep = analysis.keep_mask(plan.kept)
    targets, skipped = _targets(original, analysis, keep, scope)
    _collect_original_outputs(original, targets, calibration, samples_per_image, batch_size, provider, seed)
    graph = pruned.gs_graph()
    nodes = {node.name: node for node in graph.nodes}
    layers = list(skipped)
    for target in targets:
        layers.append(_refit(target, nodes[target.node], graph, calibration, batch_size, provider, ridge))
    rebuilt = ModelGraph.from_proto(export_clean(graph), source_sha256=pruned.source_sha256, notes=pruned.notes)
    return rebuilt, ReconstructionReport(tuple(layers), calibration.count, samples_per_image, ridge)


def _targets(original: ModelGraph, analysis: ChannelAnalysis, keep: np.ndarray, scope: str):
    weights = {t.name: t for t in original.proto.graph.initializer}
    lost = {node for node, tensor in analysis.reducing_edges if not analysis.kept_positions(tensor, keep).all()}
    readers = _readers(original)
    chosen = lost if scope == "lost" else _downstream(original, lost, readers)
    targets, skipped = [], []
    for node in original.proto.graph.node:
        if node.name not in chosen or (node.name not in lost and node.op_type not in ("Conv", "Gemm")):
            continue
        attrs = {a.name: _attr(a) for a in node.attribute}
        if node.name not in lost and attrs.get("group", 1) != 1:
            continue  # a grouped or depthwise conv mixes no channels: the convs after it correct its drift
        weight = weights.get(node.input[1]) if len(node.input) > 1 else None
        kept_out = analysis.kept_positions(node.output[0], keep)
        if kept_out is None and weight is not None and node.name not in lost:
            kept_out = np.ones(_output_channels(node, attrs, weight), dtype=bool)  # an untracked output keeps all
        geometry = ConvGeometry.of(attrs, tuple(weight.dims)) if node.op_type == "Conv" and weight else None
        usable = (node.op_type == "Conv" and geometry is not None) or (node.op_type == "Gemm" and not attrs.get("transA", 0))
        if weight is None or kept_out is None or not usable:
            skipped.append(LayerRefit(node.name, node.op_type, 0, 0, float("nan"), float("nan"), False,
                                      "not refitted: only Conv (explicit pads) and Gemm are"))
            continue
        addend, reference = _residual(original, node, readers)
        rectified = _only_relu(readers.get(reference, ()))
        targets.append(_Target(node.name, node.op_type, node.input[0], node.output[0], kept_out, geometry, rectified,
                               addend, reference))
    return targets, skipped


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
    if node.op_type == "Gemm" and not attrs.get("transB", 0):
        return int(weight.dims[1])
    return int(weight.dims[0])


def _attr(attribute):
    import onnx

    return onnx.helper.get_attribute_value(attribute)


def _collect_original_outputs(original, targets, calibration, per_image, batch_size, provider, seed) -> None:
    if not targets:
        return
    runner = ActivationRunner(original, sorted({t.reference for t in targets}), provider)
    for t in targets:
        t.y_rows = []
        shape = original.shapes[t.output]
        if t.geometry is not None:
            t.positions = sample_positions(np.arange(calibration.count), int(shape[2]), int(shape[3]), per_image, seed)
    first = 0
    for batch, values in runner.stream(calibration.batches(batch_size)):
        count = len(batch.indices)
        for t in targets:
            y = values[t.reference][:, t.kept_out]
            if t.geometry is None:
                t.y_rows.append(y.reshape(count, -1))
            else:
                t.y_rows.append(outputs_at(y, first, _in_batch(t.positions, first, count)))
        first += count


def _in_batch(positions: np.ndarray, first: int, count: int) -> np.ndarray:
    return positions[(positions[:, 0] >= first) & (positions[:, 0] < first + count)]


def _refit(target: _Target, node, graph, calibration, batch_size, provider, ridge) -> LayerRefit:
    import onnx_graphsurgeon as gs

    current = ModelGraph(export_clean(graph), {}, {})
    addend = target.addend if target.addend in graph.tensors() else None
    runner = ActivationRunner(current, [target.input] + ([addend] if addend else []), provider)
    x_rows, s_rows, first = [], [], 0
    for batch, values in runner.stream(calibration.batches(batch_size)):
        x = values[target.input]
        count = len(batch.indices)
        if target.geometry is None:
            x_rows.append(x.reshape(count, -1))
        else:
            at = _in_batch(target.positions, first, count)
            x_rows.append(patches(x, first, at, target.geometry))
            if addend:
                s_rows.append(outputs_at(values[addend], first, at))
        first += count
    x, y = np.concatenate(x_rows), np.concatenate(target.y_rows)
    offset = np.concatenate(s_rows) if s_rows else np.zeros((1, y.shape[1]))
    y = y - offset  # the residual sum minus what the shortcut now brings: what this conv must make
    weight = np.asarray(node.inputs[1].values)
    bias = np.asarray(node.inputs[2].values) if len(node.inputs) > 2 and node.inputs[2].name else np.zeros(y.shape[1], weight.dtype)
    transposed = target.op == "Gemm" and not int(node.attrs.get("transB", 0))
    matrix = weight.T if transposed else weight.reshape(weight.shape[0], -1)
    groups = target.geometry.groups if target.geometry is not None else 1
    new_matrix, new_bias = matrix.astype(np.float64).copy(), bias.astype(np.float64).copy()
    before = after = 0.0
    rows_out, cols_in = matrix.shape[0] // groups, x.shape[1] // groups
    for g in range(groups):
        out = slice(g * rows_out, (g + 1) * rows_out)
        xs, ys, shift = x[:, g * cols_in:(g + 1) * cols_in], y[:, out], offset[:, out]
        fitted_w, fitted_b = ridge_fit(xs, ys, ridge)
        if target.rectified:
            fitted_w, fitted_b = rectified_fit(xs, ys, ridge, fitted_w, fitted_b, shift)
        before += relative_error(xs, ys, matrix[out], bias[out], shift, target.rectified) ** 2
        after += relative_error(xs, ys, fitted_w, fitted_b, shift, target.rectified) ** 2
        new_matrix[out], new_bias[out] = fitted_w, fitted_b
    before, after = np.sqrt(before / groups), np.sqrt(after / groups)
    applied = after < before
    if applied:
        shaped = (new_matrix.T if transposed else new_matrix.reshape(weight.shape)).astype(weight.dtype)
        node.inputs[1] = gs.Constant(f"{node.name}.weight.refit", np.ascontiguousarray(shaped))
        bias_constant = gs.Constant(f"{node.name}.bias.refit", new_bias.astype(weight.dtype))
        if len(node.inputs) > 2:
            node.inputs[2] = bias_constant
        else:
            node.inputs.append(bias_constant)
    logger.info("refit %s: relative error %.4f -> %.4f%s", target.node, before, after, "" if applied else " (kept)")
    aim = ("the residual sum" if addend else "its output") + (" after the ReLU" if target.rectified else "")
    return LayerRefit(target.node, target.op, len(x), x.shape[1], float(before), float(min(before, after)), applied,
                      f"fitted to {aim}")
