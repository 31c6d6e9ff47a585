"""The least-squares statistics of every linear consumer of prunable channels, streamed over calibration data.

A consumer is a Conv (explicit pads; each group of a grouped conv on its own), a Gemm or a MatMul by a
constant matrix that reads a tensor of tracked channels. One pass of the original model gives, per consumer,
the rows X of its least-squares problem: im2col patches of its input at sampled output positions (the same
positions reconstruction uses), whole input rows for a Gemm or a MatMul on an N,C matrix, or, for a MatMul on
the last axis of an N,H,W,C map (a ConvNeXt-style MLP), its input vectors at sampled sites (again those
reconstruction samples). Its original outputs there are Y = X W^T + b with its own weights, so they need not
be captured: X^T Y and ||Y||^2 follow from X^T X and the column sums. Only those sums are kept (float64
products of the float32 rows: exact enough for reconstruction to fit from them, `reconstruct.reuse`), so
memory is set by the layer sizes and does not grow with the number of images, and the capture asks ONNX
Runtime for nothing but the consumers' inputs. When reconstruction will follow, the same pass keeps the
tensors it fits its layers to at the same sites, computed from these rows (`capture.reference_rows`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.capture.consumer_rows import ConsumerRows, unchanging
from edgeprune.capture.reference_rows import ReferenceRows
from edgeprune.capture.references import SiteRows, SiteTensor
from edgeprune.capture.rows import ConvGeometry, linear_positions, sample_positions
from edgeprune.graph.model import ModelGraph
from edgeprune.graph.shapes import concrete_size


@dataclass(frozen=True)
class LinearConsumer:
    """A layer whose output is linear in its input channels: ``columns[k]`` is the global channel class
    of column k of its regression rows (a channel owns kh*kw columns of a conv, one per feature it feeds a
    Gemm or MatMul)."""

    node: str
    input: str
    output: str
    geometry: ConvGeometry | None  # None for a Gemm or MatMul
    columns: np.ndarray
    weight: np.ndarray  # (outputs, columns): the layer as a matrix on its regression rows
    inputs: slice = field(default_factory=lambda: slice(None))  # its input channels (a grouped conv: one group)
    sites: int = 0  # a MatMul on a channels-last map: input rows per image (H*W), sampled like a conv's outputs


@dataclass
class ConsumerGram:
    """Running sums of one consumer's regression rows X (rows, D).

    Rows are buffered up to ``FLUSH_ROWS`` before their product is taken, so a model with a fixed batch of
    one image does not pay a D x D update per image."""

    consumer: LinearConsumer
    xx: np.ndarray
    x_sum: np.ndarray
    rows: int = 0
    pending: list = field(default_factory=list)
    pending_rows: int = 0
    exact: bool = False  # products in float64 (for reconstruction to fit from), else in float32 (for scores)

    FLUSH_ROWS = 1024

    @classmethod
    def empty(cls, consumer: LinearConsumer, exact: bool = False) -> ConsumerGram:
        d = len(consumer.columns)
        return cls(consumer, np.zeros((d, d)), np.zeros(d), exact=exact)

    def update(self, x: np.ndarray) -> None:
        self.pending.append(np.asarray(x, dtype=np.float32))
        self.rows += len(x)
        self.pending_rows += len(x)
        if self.pending_rows >= self.FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        x = np.concatenate(self.pending)
        self.pending.clear()
        self.pending_rows = 0
        # np.dot spots X^T X and takes half the work (syrk). float32 products serve the scores; the layers
        # reconstruction may fit from these sums (``exact``) take float64 ones, which that fit needs
        if self.exact:
            x = x.astype(np.float64)
            product = np.dot(x.T, x)
        else:
            with np.errstate(over="ignore"):
                product = np.dot(x.T, x)
            if not np.isfinite(product).all():  # values too large to square in float32
                x = x.astype(np.float64)
                product = np.dot(x.T, x)
        self.xx += product
        self.x_sum += x.sum(axis=0, dtype=np.float64)

    def centred(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(X^T X, X^T Y, ||Y||^2) of the centred rows, Y the original outputs: the statistics of a
        least-squares fit with a bias (centring removes the bias from Y = X W^T + b)."""
        self.flush()
        n = max(self.rows, 1)
        x_mean = self.x_sum / n
        xx = self.xx - n * np.outer(x_mean, x_mean)
        xy = xx @ self.consumer.weight.T
        return xx, xy, max(float(np.sum(xy * self.consumer.weight.T)), 0.0)


@dataclass(frozen=True)
class ConsumerGrams:
    grams: tuple[ConsumerGram, ...]
    images: int
    samples_per_image: int
    seconds: dict = field(default_factory=dict)  # "inference" (ONNX Runtime) and "statistics"
    seed: int = 0  # of the sampled sites
    solved: dict = field(default_factory=dict, repr=False, compare=False)  # fits kept between groups (scoring)
    references: Mapping[str, SiteRows] = field(default_factory=dict, repr=False, compare=False)  # see below


def linear_consumers(model: ModelGraph, analysis: ChannelAnalysis) -> tuple[LinearConsumer, ...]:
    """Every Conv (explicit pads; one consumer per group of a grouped conv), Gemm (no transA) and MatMul by a
    constant matrix that sums over tracked channels of its first input: axis 1 of a Conv's or Gemm's, the
    last axis of a MatMul's (an N,C matrix, or an N,H,W,C map)."""
    weights = {t.name: t for t in model.proto.graph.initializer}
    nodes = {node.name: node for node in model.proto.graph.node}
    found = []
    for node_name, tensor in analysis.reducing_edges:
        node = nodes[node_name]
        channels = analysis.tensors.get(tensor)
        weight = weights.get(node.input[1]) if len(node.input) > 1 else None
        rank = len(model.shapes.get(tensor, ()))
        summed = rank - 1 if node.op_type == "MatMul" else 1  # the axis the layer sums over
        if node.input[0] != tensor or weight is None or channels is None or channels.axis != summed:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        matrix = _as_matrix(node.op_type, attrs, numpy_helper.to_array(weight).astype(np.float64), rank)
        if matrix is None:
            continue
        if node.op_type != "Conv":
            sites = _sites(model, tensor) if rank > 2 else 0
            found.append(
                LinearConsumer(node.name, tensor, node.output[0], None, channels.classes.copy(), matrix, sites=sites)
            )
            continue
        geometry = ConvGeometry.of(attrs, tuple(weight.dims))
        if geometry is None:
            continue
        kernel = geometry.kernel[0] * geometry.kernel[1]
        per_in, per_out = len(channels.classes) // geometry.groups, len(matrix) // geometry.groups
        for g in range(geometry.groups):  # a grouped conv's groups are separate least-squares problems
            inputs = slice(g * per_in, (g + 1) * per_in) if geometry.groups > 1 else slice(None)
            found.append(
                LinearConsumer(
                    node.name,
                    tensor,
                    node.output[0],
                    geometry,
                    np.repeat(channels.classes[inputs], kernel),
                    matrix[g * per_out : (g + 1) * per_out],
                    inputs,
                )
            )
    return tuple(found)


def _as_matrix(op: str, attrs: dict, weight: np.ndarray, input_rank: int) -> np.ndarray | None:
    """The layer as an (outputs, columns) matrix on its regression rows, or None for a layer that is not one."""
    if op == "Conv" and weight.ndim == 4:
        return weight.reshape(weight.shape[0], -1)
    if op == "Gemm" and weight.ndim == 2 and not attrs.get("transA", 0):
        return weight if attrs.get("transB", 0) else weight.T
    if op == "MatMul" and weight.ndim == 2 and input_rank >= 2:
        return weight.T
    return None


def _sampled_size(model: ModelGraph, consumer: LinearConsumer) -> tuple[int, int]:
    """(height, width) that ``sample_positions`` draws a consumer's rows from: a conv's output size, or
    (sites, 1) for a channels-last MatMul, the call reconstruction makes for it (rows (image, site, 0))."""
    if consumer.geometry is None:
        return consumer.sites, 1
    height, width = concrete_size(model, consumer.output, slice(2, 4), "capturing the refit statistics")
    return height, width


def _sites(model: ModelGraph, tensor: str) -> int:
    """Input rows per image of a MatMul on ``tensor`` (N, ..., C): the product of the axes in between."""
    shape = model.shapes[tensor]
    concrete_size(model, tensor, slice(1, len(shape) - 1), "capturing the refit statistics")  # or a one-line error
    return linear_positions(shape)


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
    references: Sequence[SiteTensor] = (),
) -> ConsumerGrams:
    """One pass of ``model`` over ``calibration``, summing every linear consumer's least-squares statistics.

    ``references``: tensors whose values at the sampled sites the same pass also keeps (``references`` of
    the result: what reconstruction fits its layers to, `capture.references`)."""
    consumers = linear_consumers(model, analysis)
    if not consumers:  # nothing to measure: every group falls back to the weight criterion
        return ConsumerGrams((), calibration.count, samples_per_image, {"inference": 0.0, "statistics": 0.0}, seed)
    sizes = {c.node: _sampled_size(model, c) for c in consumers if c.geometry is not None or c.sites}
    positions = {
        size: sample_positions(np.arange(calibration.count), *size, samples_per_image, seed)
        for size in set(sizes.values())
    }  # the same for every consumer of one output size, and the sites reconstruction samples
    kept = ReferenceRows(
        model,
        references,
        calibration.count,
        samples_per_image,
        seed,
        consumers,
        lambda c: positions[sizes[c.node]] if c.node in sizes else None,
        frozenset(c.input for c in consumers),
    )
    rows = ConsumerRows(model, consumers, sizes, positions, provider, also=kept.names)
    exact = unchanging(model, analysis, {c.input for c in consumers})
    grams = [ConsumerGram.empty(c, exact=c.input in exact) for c in consumers]
    first, inference, statistics = 0, 0.0, 0.0
    for batch in calibration.batches(batch_size):
        start = time.perf_counter()
        count = len(batch.indices)
        values = rows.run(batch.inputs, first, count)
        middle = time.perf_counter()
        rows_of = rows.batch(values)
        for gram in grams:
            if rows.owner[id(gram.consumer)] is gram.consumer:  # one sum per distinct set of rows
                gram.update(rows_of(gram.consumer))
        kept.add(values, rows_of, first, count)
        first += count
        inference += middle - start
        statistics += time.perf_counter() - middle
        if progress:
            progress(first, calibration.count)
    start = time.perf_counter()
    for gram in grams:
        gram.flush()
    by_consumer = {id(g.consumer): g for g in grams}
    for gram in grams:  # consumers that read the same rows (a CSP block's two 1x1 convs) share their sums
        owner = by_consumer[id(rows.owner[id(gram.consumer)])]
        if owner is not gram:
            gram.xx, gram.x_sum, gram.rows = owner.xx, owner.x_sum, owner.rows
    statistics += time.perf_counter() - start
    seconds = {"inference": round(inference, 4), "statistics": round(statistics, 4)}
    return ConsumerGrams(tuple(grams), first, samples_per_image, seconds, seed, references=kept.rows())


def fixed_inputs(model: ModelGraph, analysis: ChannelAnalysis, grams: ConsumerGrams) -> ConsumerGrams:
    """Only the consumers whose inputs no plan can change (their sums are float64: ``exact``), what
    reconstruction may fit from these statistics without a pass (`reconstruct.reuse`). Kept past scoring
    instead of every consumer's, they hold a few layers' matrices, not the model's."""
    kept = tuple(g for g in grams.grams if g.exact)
    return ConsumerGrams(
        kept, grams.images, grams.samples_per_image, grams.seconds, grams.seed, references=grams.references
    )
