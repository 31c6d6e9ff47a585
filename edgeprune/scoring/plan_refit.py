"""The closed-form reconstruction of one plan, from the consumers' streamed Gram statistics (`capture_grams`).

For every layer that loses input channels, the ridge least-squares refit of its original outputs from the
inputs it keeps is solved from the centred Gram matrices X^T X and X^T Y already summed over the
calibration data (the same rows, positions and ridge as `reconstruct`), so judging a plan as the network
reconstruction would produce needs no surgery and no pass over the data: one small solve per layer.

It is the reconstruction of the layers that lost inputs (``scope="lost"``) with each layer's inputs taken
from the *original* network: exact for a layer whose inputs no earlier refit changed, an approximation
further down, where `reconstruct` fits the pruned network's own inputs (and refines fits before a ReLU).
How well it ranks plans against the true reconstruction is measured in docs/results-search.md.

``loss`` is the label-free `refit` reward's quantity: per refitted layer, the refit's residual over the
variance of its kept outputs, summed over the layers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from onnx import numpy_helper

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.graph.model import ModelGraph


@dataclass(frozen=True)
class LayerFit:
    """A refitted layer: ``weight`` in the shape of its stored initializer (removed inputs at zero) and
    ``bias_delta`` (outputs,): what to add to its output so that the original bias becomes the refit one."""

    node: str
    weight: np.ndarray
    bias_delta: np.ndarray
    loss: float  # residual over the variance of the kept outputs


@dataclass(frozen=True)
class _Part:
    """One least-squares problem of a layer (a grouped conv has one per group), its statistics centred."""

    columns: np.ndarray  # global channel class of every column
    outputs: slice  # the rows of the layer's matrix it fits
    xx: np.ndarray
    xy: np.ndarray  # (columns, outputs)
    x_mean: np.ndarray
    matrix: np.ndarray  # the original (outputs, columns)
    y_square: np.ndarray  # per output, the centred sum of squares of the original outputs


@dataclass(frozen=True)
class _Layer:
    node: str
    shape: tuple[int, ...]  # of the stored weight
    stored_transposed: bool  # stored as (columns, outputs): a MatMul's, or a Gemm's without transB
    outputs: int
    output_classes: np.ndarray | None  # global class of each output channel; None when not tracked
    parts: tuple[_Part, ...]


class PlanRefit:
    """The refit of any plan's layers, from one model's consumer statistics (`ConsumerGrams`)."""

    def __init__(self, model: ModelGraph, analysis: ChannelAnalysis, grams, ridge: float = 1e-3) -> None:
        self.analysis, self.ridge = analysis, ridge
        weights = {t.name: t for t in model.proto.graph.initializer}
        nodes = {n.name: n for n in model.proto.graph.node}
        by_node: dict[str, list] = {}
        for gram in grams.grams:
            by_node.setdefault(gram.consumer.node, []).append(gram)
        layers = []
        for name, node_grams in by_node.items():
            node = nodes[name]
            stored = weights[node.input[1]]
            transb = any(a.name == "transB" and a.i for a in node.attribute)
            transposed = node.op_type == "MatMul" or (node.op_type == "Gemm" and not transb)
            parts, first = [], 0
            for gram in node_grams:
                xx, xy, _ = gram.centred()
                c = gram.consumer
                rows = len(c.weight)
                y_square = np.maximum(np.einsum("oc,co->o", c.weight, xy), 0.0)
                x_mean = gram.x_sum / max(gram.rows, 1)
                parts.append(_Part(c.columns, slice(first, first + rows), xx, xy, x_mean, c.weight, y_square))
                first += rows
            tracked = analysis.tensors.get(node_grams[0].consumer.output)
            classes = tracked.classes if tracked is not None and len(tracked.classes) == first else None
            layers.append(_Layer(name, tuple(stored.dims), transposed, first, classes, tuple(parts)))
        self.layers = tuple(layers)
        self._originals = {
            layer.node: numpy_helper.to_array(weights[nodes[layer.node].input[1]]).astype(np.float32)
            for layer in self.layers
        }

    def original_weight(self, node: str) -> np.ndarray:
        return self._originals[node]

    def lost(self, keep: np.ndarray) -> list[_Layer]:
        """The layers that lose input channels under the keep mask (over the analysis' channel classes)."""
        return [layer for layer in self.layers if any(not keep[p.columns].all() for p in layer.parts)]

    def refit(self, kept: Mapping[str, Sequence[int]]) -> list[LayerFit]:
        """The refit of every layer that loses inputs under ``kept`` (a plan's kept channels per group)."""
        keep = self.analysis.keep_mask({gid: tuple(c) for gid, c in kept.items()})
        return [self._fit(layer, keep) for layer in self.lost(keep)]

    def loss(self, kept: Mapping[str, Sequence[int]]) -> float:
        """Summed over the layers that lose inputs: the refit residual over the variance of the kept outputs."""
        keep = self.analysis.keep_mask({gid: tuple(c) for gid, c in kept.items()})
        return float(sum(self._fit(layer, keep, weights=False).loss for layer in self.lost(keep)))

    def _fit(self, layer: _Layer, keep: np.ndarray, weights: bool = True) -> LayerFit:
        matrix = np.zeros((layer.outputs, len(layer.parts[0].columns)))  # every part has as many columns
        delta = np.zeros(layer.outputs)
        kept_out = np.ones(layer.outputs, dtype=bool) if layer.output_classes is None else keep[layer.output_classes]
        residual = variance = 0.0
        for part in layer.parts:
            cols = np.flatnonzero(keep[part.columns])
            outs = kept_out[part.outputs]
            if not len(cols):  # a removed group of a grouped conv: its outputs go with it; predict the mean
                variance += float(part.y_square[outs].sum())
                residual += float(part.y_square[outs].sum())
                delta[part.outputs] = part.x_mean @ part.matrix.T
                continue
            a, b = part.xx[np.ix_(cols, cols)], part.xy[cols]
            penalty = self.ridge * max(float(np.trace(a)) / len(cols), 1e-12)
            solved = np.linalg.solve(a + penalty * np.eye(len(cols)), b)  # (kept columns, outputs)
            fitted = (b * solved).sum(axis=0)  # tr(B^T S) per output
            curvature = (solved * (a @ solved)).sum(axis=0)
            lost = np.maximum(part.y_square - 2.0 * fitted + curvature, 0.0)
            residual += float(lost[outs].sum())
            variance += float(part.y_square[outs].sum())
            if weights:
                matrix[part.outputs][:, cols] = solved.T
                delta[part.outputs] = part.x_mean @ part.matrix.T - part.x_mean[cols] @ solved
        loss = residual / variance if variance > 0 else 0.0
        if not weights:
            return LayerFit(layer.node, np.empty(0, dtype=np.float32), delta, loss)
        stored = matrix.T if layer.stored_transposed else matrix.reshape(layer.shape)
        return LayerFit(layer.node, np.ascontiguousarray(stored, dtype=np.float32), delta.astype(np.float32), loss)
