"""`ActivationStats`: the streamed statistics of every capture point, in bounded memory."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.capture.points import CapturePoint, capture_points, channels_first
from edgeprune.capture.session import ActivationRunner
from edgeprune.errors import InputError
from edgeprune.graph.model import ModelGraph
from edgeprune.graph.shapes import concrete_size
from edgeprune.maps.accumulate import LayerAccumulator
from edgeprune.maps.quantize import default_levels

logger = logging.getLogger(__name__)

STAT_FIELDS = (
    "aura_entropy",
    "relative_entropy",
    "mean_image_entropy",
    "dead_fraction",
    "mean_activation",
    "mean_abs_activation",
    "aura_mi",
    "hist_mi",
    "label_mi",
)


@dataclass(frozen=True)
class PointStats:
    point: CapturePoint
    values: Mapping[str, np.ndarray]  # per channel position of point.tensor; a field is absent when unmeasured


@dataclass(frozen=True)
class ActivationStats:
    points: tuple[PointStats, ...]
    images: int
    levels: int | None
    labels_source: str  # "labels", "predictions" (the model's own top-1) or "none"
    seconds: Mapping[str, float] = field(default_factory=dict)  # "inference" (ONNX Runtime) and "statistics"


def capture_stats(
    model: ModelGraph,
    analysis: ChannelAnalysis,
    calibration,
    *,
    batch_size: int = 64,
    levels: int | None = None,
    provider: str = "auto",
    progress: Callable[[int, int], None] | None = None,
    measures: frozenset[str] = frozenset({"aura_mi"}),
    stride: int | None = None,
) -> ActivationStats:
    """Run the model once over ``calibration`` and stream every capture point's maps into its accumulator.

    Dead maps and moments are always measured; ``measures`` adds what else a criterion reads: ``entropy``
    (each channel's aura matrices), ``aura_mi`` and ``hist_mi`` (pair statistics with the consumer's maps),
    ``label_mi`` (with labels; it implies the aura matrices).
    ``stride`` samples the sites of the pair statistics (None: ``default_stride`` per layer; 1: every site).
    A channels-last map (N,H,W,C, inside a ConvNeXt-style MLP) and its MatMul's output are accumulated with
    their channel axis moved to position 1, so every statistic is the one of the same maps laid out N,C,H,W.
    """
    pairs = bool(measures & {"aura_mi", "hist_mi"})
    points = capture_points(model, analysis, channels_last=True)
    if not points:
        raise InputError("no prunable group has a feature map to measure; use --criterion l1 for this model")
    output = model.output_names[0]
    names = [p.tensor for p in points] + [p.next_tensor for p in points if p.next_tensor and pairs] + [output]
    runner = ActivationRunner(model, names, provider)
    n_classes = _class_count(model, output) if "label_mi" in measures else None
    accumulators = {}
    purpose = "capturing activation statistics"
    for point in points:
        channels = concrete_size(model, point.tensor, _axis(point.channel_axis), purpose)[0]
        next_channels = None
        if point.next_tensor and pairs:
            next_channels = concrete_size(model, point.next_tensor, _axis(point.next_axis), purpose)[0]
        height, width = (concrete_size(model, point.tensor, _axis(a), purpose)[0] for a in point.spatial_axes)
        accumulators[point.tensor] = LayerAccumulator(
            channels=channels,
            levels=levels or default_levels(height, width),
            next_channels=next_channels,
            n_classes=n_classes,
            cross="aura_mi" in measures,
            entropy="entropy" in measures,
            histogram="hist_mi" in measures,
            stride=stride,
        )
    done, inference, statistics = 0, 0.0, 0.0
    for batch in calibration.batches(batch_size):
        start = time.perf_counter()
        values = runner.run(batch.inputs)
        middle = time.perf_counter()
        labels = None
        if n_classes is not None:
            labels = batch.labels if batch.labels is not None else _predictions(values[output], n_classes)
        for point in points:
            _check_finite(values[point.tensor], point.tensor)
            nxt = channels_first(values[point.next_tensor], point, True) if point.next_tensor and pairs else None
            accumulators[point.tensor].update(channels_first(values[point.tensor], point), nxt, labels)
        inference += middle - start
        statistics += time.perf_counter() - middle
        done += len(batch.indices)
        if progress:
            progress(done, calibration.count)
    labels_source = "none" if n_classes is None else ("labels" if calibration.labels is not None else "predictions")
    stats = tuple(PointStats(p, _finalise(accumulators[p.tensor])) for p in points)
    seconds = MappingProxyType({"inference": round(inference, 4), "statistics": round(statistics, 4)})
    return ActivationStats(stats, done, levels, labels_source, seconds)


def _axis(axis: int) -> slice:
    return slice(axis, axis + 1)


def _class_count(model: ModelGraph, output: str) -> int | None:
    shape = model.shapes.get(output, ())
    return int(shape[1]) if len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 1 else None


def _predictions(logits: np.ndarray, n_classes: int | None) -> np.ndarray | None:
    return None if n_classes is None else np.argmax(logits.reshape(len(logits), -1), axis=1)


def _check_finite(values: np.ndarray, name: str) -> None:
    if not np.isfinite(values).all():
        raise InputError(f"activation {name} has NaN or Inf values on the calibration data; check its preprocessing")


def _finalise(acc) -> Mapping[str, np.ndarray]:
    ceiling = 2.0 * np.log2(max(acc.levels, 2))  # the entropy of a uniform G x G aura matrix
    entropy = acc.aura_entropy()
    values = {
        "aura_entropy": entropy,
        "relative_entropy": None if entropy is None else entropy / ceiling,
        "mean_image_entropy": acc.mean_image_entropy(),
        "dead_fraction": acc.dead_fraction(),
        "mean_activation": acc.mean_activation(),
        "mean_abs_activation": acc.mean_abs_activation(),
    }
    values = {name: value for name, value in values.items() if value is not None}  # absent: not measured
    for name, result in (("aura_mi", acc.aura_mi), ("hist_mi", acc.hist_mi), ("label_mi", acc.label_mi)):
        value = result()
        if value is not None:
            values[name] = value
    return MappingProxyType(values)
