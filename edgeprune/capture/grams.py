"""The least-squares statistics of every linear consumer of prunable channels, streamed over calibration data.

A consumer is a Conv (ungrouped, explicit pads) or a Gemm that reads a tensor of tracked channels. One pass
of the original model gives, per consumer, the rows of its least-squares problem: im2col patches of its
input at sampled output positions (the same positions reconstruction uses) against its original
pre-activation outputs there, or whole input rows for a Gemm. Only their sums are kept (X^T X, X^T Y, the
column sums and the output's sum of squares, in float64), so memory is set by the layer sizes and does not
grow with the number of images; ``centred`` turns them into the centred Gram matrices of a fit with a bias.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.capture.session import ActivationRunner
from edgeprune.errors import InputError
from edgeprune.graph.model import ModelGraph
from edgeprune.reconstruct.rows import ConvGeometry, outputs_at, patches, sample_positions


@dataclass(frozen=True)
class LinearConsumer:
    """A layer whose output is linear in its input channels: ``columns[k]`` is the global channel class
    of column k of its regression rows (a channel owns kh*kw columns of a conv, one per position of a Gemm)."""

    node: str
    input: str
    output: str
    geometry: ConvGeometry | None  # None for a Gemm
    columns: np.ndarray
    outputs: int  # output channels (Conv) or features (Gemm)


@dataclass
class ConsumerGram:
    """Running sums of one consumer's regression rows X (rows, D) and original outputs Y (rows, K)."""

    consumer: LinearConsumer
    xx: np.ndarray
    xy: np.ndarray
    x_sum: np.ndarray
    y_sum: np.ndarray
    y_square: float = 0.0
    rows: int = 0

    @classmethod
    def empty(cls, consumer: LinearConsumer) -> "ConsumerGram":
        d, k = len(consumer.columns), consumer.outputs
        return cls(consumer, np.zeros((d, d)), np.zeros((d, k)), np.zeros(d), np.zeros(k))

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        x, y = x.astype(np.float64), y.astype(np.float64)
        self.xx += x.T @ x
        self.xy += x.T @ y
        self.x_sum += x.sum(axis=0)
        self.y_sum += y.sum(axis=0)
        self.y_square += float(np.square(y).sum())
        self.rows += len(x)

    def centred(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(X^T X, X^T Y, ||Y||^2) of the centred rows: the statistics of a least-squares fit with a bias."""
        n = max(self.rows, 1)
        x_mean, y_mean = self.x_sum / n, self.y_sum / n
        xx = self.xx - n * np.outer(x_mean, x_mean)
        xy = self.xy - n * np.outer(x_mean, y_mean)
        return xx, xy, max(self.y_square - n * float(y_mean @ y_mean), 0.0)


@dataclass(frozen=True)
class ConsumerGrams:
    grams: tuple[ConsumerGram, ...]
    images: int
    samples_per_image: int
    seconds: dict = field(default_factory=dict)  # "inference" (ONNX Runtime) and "statistics"


def linear_consumers(model: ModelGraph, analysis: ChannelAnalysis) -> tuple[LinearConsumer, ...]:
    """Every Conv (groups 1, explicit pads) and Gemm (no transA) that sums over tracked channels."""
    weights = {t.name: t for t in model.proto.graph.initializer}
    nodes = {node.name: node for node in model.proto.graph.node}
    found = []
    for node_name, tensor in analysis.reducing_edges:
        node = nodes[node_name]
        channels = analysis.tensors.get(tensor)
        weight = weights.get(node.input[1]) if len(node.input) > 1 else None
        if node.op_type not in ("Conv", "Gemm") or node.input[0] != tensor or weight is None or channels is None:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Gemm":
            if attrs.get("transA", 0) or channels.axis != 1:
                continue
            outputs = weight.dims[0] if attrs.get("transB", 0) else weight.dims[1]
            found.append(LinearConsumer(node.name, tensor, node.output[0], None, channels.classes.copy(), int(outputs)))
            continue
        geometry = ConvGeometry.of(attrs, tuple(weight.dims))
        if geometry is None or geometry.groups != 1 or channels.axis != 1:
            continue
        kernel = geometry.kernel[0] * geometry.kernel[1]
        found.append(LinearConsumer(node.name, tensor, node.output[0], geometry, np.repeat(channels.classes, kernel),
                                    int(weight.dims[0])))
    return tuple(found)


def capture_grams(
    model: ModelGraph,
    analysis: ChannelAnalysis,
    calibration,
    *,
    samples_per_image: int = 16,
    seed: int = 0,
    batch_size: int = 64,
    provider: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> ConsumerGrams:
    """One pass of ``model`` over ``calibration``, summing every linear consumer's least-squares statistics."""
    consumers = linear_consumers(model, analysis)
    if not consumers:
        raise InputError("no prunable group feeds a Conv or Gemm whose refit can be measured; use --criterion l1")
    runner = ActivationRunner(model, [c.input for c in consumers] + [c.output for c in consumers], provider)
    grams = [ConsumerGram.empty(c) for c in consumers]
    positions = {}
    for c in consumers:
        shape = model.shapes[c.output]
        if c.geometry is not None:
            positions[c.node] = sample_positions(np.arange(calibration.count), int(shape[2]), int(shape[3]),
                                                 samples_per_image, seed)
    first, inference, statistics = 0, 0.0, 0.0
    for batch in calibration.batches(batch_size):
        start = time.perf_counter()
        values = runner.run(batch.inputs)
        middle = time.perf_counter()
        count = len(batch.indices)
        for gram in grams:
            c = gram.consumer
            x, y = values[c.input], values[c.output]
            if not (np.isfinite(x).all() and np.isfinite(y).all()):
                raise InputError(f"activation {c.input} or {c.output} has NaN or Inf values on the calibration "
                                 "data; check its preprocessing")
            if c.geometry is None:
                gram.update(x.reshape(count, -1), y.reshape(count, -1))
            else:
                at = positions[c.node]
                at = at[(at[:, 0] >= first) & (at[:, 0] < first + count)]
                gram.update(patches(x, first, at, c.geometry), outputs_at(y, first, at))
        first += count
        inference += middle - start
        statistics += time.perf_counter() - middle
        if progress:
            progress(first, calibration.count)
    seconds = {"inference": round(inference, 4), "statistics": round(statistics, 4)}
    return ConsumerGrams(tuple(grams), first, samples_per_image, seconds)
