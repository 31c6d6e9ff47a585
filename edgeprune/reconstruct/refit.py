"""Reconstruction: refit each consumer of pruned channels so its output matches the original model's.

Consumers go in topological order and each one's inputs come from the already-pruned (and already
refitted) network, so the errors of earlier layers are corrected by later ones (He et al. 2017, ThiNet).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.capture.rows import linear_positions, linear_rows, outputs_at, patches, sample_positions
from edgeprune.capture.session import ActivationRunner
from edgeprune.graph.load import export_clean
from edgeprune.graph.model import ModelGraph
from edgeprune.reconstruct.depth import follow_removed_blocks
from edgeprune.reconstruct.solve import rectified_fit, relative_error, ridge_fit
from edgeprune.reconstruct.targets import Target, find_targets
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
        return {
            "images": self.images,
            "samples_per_image": self.samples_per_image,
            "ridge": self.ridge,
            "layers": [asdict(layer) for layer in self.layers],
        }


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
    other Conv, Gemm or MatMul by a stored matrix whose inputs changed because something before it was
    pruned or refitted, the classifier included, so the drift that passes through untouched layers is
    corrected too. The rows of a channels-last MatMul are its input vectors at sampled spatial sites.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown reconstruction scope {scope!r}; valid: {', '.join(SCOPES)}")
    keep = analysis.keep_mask(plan.kept)
    targets, skipped = find_targets(original, analysis, keep, scope)
    targets = follow_removed_blocks(targets, original, analysis, plan)  # depth pruning: see reconstruct/depth.py
    _collect_original_outputs(original, targets, calibration, samples_per_image, batch_size, provider, seed)
    graph = pruned.gs_graph()
    nodes = {node.name: node for node in graph.nodes}
    layers = [LayerRefit(name, op, 0, 0, float("nan"), float("nan"), False, note) for name, op, note in skipped]
    for target in targets:
        layers.append(_refit(target, nodes, graph, calibration, batch_size, provider, ridge))
    rebuilt = ModelGraph.from_proto(export_clean(graph), source_sha256=pruned.source_sha256, notes=pruned.notes)
    return rebuilt, ReconstructionReport(tuple(layers), calibration.count, samples_per_image, ridge)


def _sites(target: Target, shape, count: int, per_image: int, seed: int) -> np.ndarray | None:
    """Sampled (image, y, x) output sites of a conv, (image, site, 0) input rows of a channels-last MatMul."""
    if target.geometry is not None:
        return sample_positions(np.arange(count), int(shape[2]), int(shape[3]), per_image, seed)
    if target.channels_last:
        return sample_positions(np.arange(count), linear_positions(shape), 1, per_image, seed)
    return None


def _collect_original_outputs(original, targets, calibration, per_image, batch_size, provider, seed) -> None:
    if not targets:
        return
    runner = ActivationRunner(original, sorted({t.reference for t in targets}), provider)
    for t in targets:
        t.y_rows = []
        t.positions = _sites(t, original.shapes[t.output], calibration.count, per_image, seed)
    first = 0
    for batch, values in runner.stream(calibration.batches(batch_size)):
        count = len(batch.indices)
        for t in targets:
            if t.positions is None:  # a Gemm: every image's row
                t.y_rows.append(values[t.reference][:, t.kept_out].reshape(count, -1))
                continue
            at = _in_batch(t.positions, first, count)
            if t.channels_last:
                y = np.compress(t.kept_out, values[t.reference], axis=-1)
                t.y_rows.append(linear_rows(y, first, at))
            else:
                t.y_rows.append(outputs_at(values[t.reference][:, t.kept_out], first, at))
        first += count


def _in_batch(positions: np.ndarray, first: int, count: int) -> np.ndarray:
    return positions[(positions[:, 0] >= first) & (positions[:, 0] < first + count)]


def _input_rows(target: Target, graph, calibration, batch_size, provider) -> tuple[np.ndarray, list, bool]:
    """The layer's regression rows in the current (pruned, partly refitted) network, and the shortcut's."""
    current = ModelGraph(export_clean(graph), {}, {})
    addend = target.addend if target.addend in graph.tensors() else None
    runner = ActivationRunner(current, [target.input] + ([addend] if addend else []), provider)
    x_rows, s_rows, first = [], [], 0
    for batch, values in runner.stream(calibration.batches(batch_size)):
        x = values[target.input]
        count = len(batch.indices)
        if target.positions is None:  # a Gemm: every image's row
            x_rows.append(x.reshape(count, -1))
        elif target.channels_last:
            x_rows.append(linear_rows(x, first, _in_batch(target.positions, first, count)))
        elif target.geometry is not None:
            at = _in_batch(target.positions, first, count)
            x_rows.append(patches(x, first, at, target.geometry))
            if addend:
                s_rows.append(outputs_at(values[addend], first, at))
        first += count
    return np.concatenate(x_rows), s_rows, addend is not None


def _parameters(target: Target, node, nodes) -> tuple[np.ndarray, np.ndarray]:
    """The layer as an (outputs, columns) matrix on its regression rows, and its bias (zeros if none)."""
    weight = np.asarray(node.inputs[1].values)
    if target.op == "MatMul":
        matrix = weight.T
        has_bias = target.bias_add is not None
        values = np.asarray(nodes[target.bias_add].inputs[target.bias_index].values) if has_bias else None
    else:
        matrix = weight.T if _transposed(target, node) else weight.reshape(weight.shape[0], -1)
        has_bias = len(node.inputs) > 2 and bool(node.inputs[2].name)
        values = np.asarray(node.inputs[2].values) if has_bias else None
    bias = values.reshape(-1) if values is not None else np.zeros(matrix.shape[0], weight.dtype)
    return matrix, bias


def _store(target: Target, node, nodes, matrix: np.ndarray, bias: np.ndarray) -> None:
    """Write a fit back: the weight into the layer; the bias into it, or into the Add after a MatMul."""
    import onnx_graphsurgeon as gs

    weight = np.asarray(node.inputs[1].values)
    shaped = matrix.T if target.op == "MatMul" or _transposed(target, node) else matrix.reshape(weight.shape)
    node.inputs[1] = gs.Constant(f"{node.name}.weight.refit", np.ascontiguousarray(shaped.astype(weight.dtype)))
    if target.op == "MatMul":
        if target.bias_add is not None:
            add = nodes[target.bias_add]
            old = np.asarray(add.inputs[target.bias_index].values)
            add.inputs[target.bias_index] = gs.Constant(
                f"{add.name}.bias.refit", bias.astype(old.dtype).reshape(old.shape)
            )
        return
    bias_constant = gs.Constant(f"{node.name}.bias.refit", bias.astype(weight.dtype))
    if len(node.inputs) > 2:
        node.inputs[2] = bias_constant
    else:
        node.inputs.append(bias_constant)


def _transposed(target: Target, node) -> bool:
    return target.op == "Gemm" and not int(node.attrs.get("transB", 0))


def _refit(target: Target, nodes, graph, calibration, batch_size, provider, ridge) -> LayerRefit:
    node = nodes[target.node]
    x, s_rows, has_addend = _input_rows(target, graph, calibration, batch_size, provider)
    y = np.concatenate(target.y_rows or [])
    offset = np.concatenate(s_rows) if s_rows else np.zeros((1, y.shape[1]))
    y = y - offset  # the residual sum minus what the shortcut now brings: what this conv must make
    matrix, bias = _parameters(target, node, nodes)
    groups = target.geometry.groups if target.geometry is not None else 1
    new_matrix, new_bias = matrix.astype(np.float64).copy(), bias.astype(np.float64).copy()
    before = after = 0.0
    rows_out, cols_in = matrix.shape[0] // groups, x.shape[1] // groups
    for g in range(groups):
        out = slice(g * rows_out, (g + 1) * rows_out)
        xs, ys, shift = x[:, g * cols_in : (g + 1) * cols_in], y[:, out], offset[:, out]
        fitted_w, fitted_b = ridge_fit(xs, ys, ridge, target.intercept)
        if target.rectified:
            fitted_w, fitted_b = rectified_fit(xs, ys, ridge, fitted_w, fitted_b, shift, intercept=target.intercept)
        before += relative_error(xs, ys, matrix[out], bias[out], shift, target.rectified) ** 2
        after += relative_error(xs, ys, fitted_w, fitted_b, shift, target.rectified) ** 2
        new_matrix[out], new_bias[out] = fitted_w, fitted_b
    before, after = np.sqrt(before / groups), np.sqrt(after / groups)
    applied = after < before
    if applied:
        _store(target, node, nodes, new_matrix, new_bias)
    logger.info("refit %s: relative error %.4f -> %.4f%s", target.node, before, after, "" if applied else " (kept)")
    aim = (
        "the residual sum"
        if has_addend
        else "its output plus the bias Add after it"
        if target.bias_add
        else "its output"
    )
    aim += " after the ReLU" if target.rectified else ""
    return LayerRefit(
        target.node,
        target.op,
        len(x),
        x.shape[1],
        float(before),
        float(min(before, after)),
        applied,
        f"fitted to {aim}",
    )
