"""Measuring a model's superization curve on calibration data with one plain capture session."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.capture.session import ActivationRunner
from edgeprune.errors import InputError
from edgeprune.graph.model import ModelGraph
from edgeprune.semiotic.curve import CurveAccumulator, SuperizationCurve
from edgeprune.semiotic.layers import SaliencyLayer, saliency_layers

logger = logging.getLogger(__name__)

SALIENCY = ("mean", "aura-mi", "grad-cam")


def measure_curve(
    model: ModelGraph,
    analysis: ChannelAnalysis,
    calibration,
    *,
    saliency: str = "mean",
    levels: int | None = None,
    resolution: int | None = None,
    batch_size: int = 64,
    provider: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> SuperizationCurve:
    """The gradient-free curve: channel-mean saliency maps (``aura-mi``: weighted by each channel's aura MI)."""
    if saliency not in ("mean", "aura-mi"):
        raise InputError(f"unknown gradient-free saliency '{saliency}'; choose mean or aura-mi")
    layers = saliency_layers(model, analysis)
    weights = mi_weights(model, analysis, calibration, layers, batch_size, provider) if saliency == "aura-mi" else {}
    runner = ActivationRunner(model, [layer.tensor for layer in layers], provider)
    accumulator = CurveAccumulator(layers, levels, weights, resolution)
    done = 0
    for batch in calibration.batches(batch_size):
        values = runner.run(batch.inputs)
        for layer in layers:
            if not np.isfinite(values[layer.tensor]).all():
                raise InputError(
                    f"activation {layer.tensor} has NaN or Inf values on the calibration data; check its preprocessing"
                )
        accumulator.update(values)
        done += len(batch)
        if progress:
            progress(done, calibration.count)
    return accumulator.curve(saliency)


def mi_weights(
    model: ModelGraph,
    analysis: ChannelAnalysis,
    calibration,
    layers: tuple[SaliencyLayer, ...],
    batch_size: int,
    provider: str,
) -> Mapping[str, np.ndarray]:
    """Per layer tensor, each channel's aura MI with its consumer (a capture pass); layers without one get none."""
    from edgeprune.capture import capture_stats

    stats = capture_stats(
        model, analysis, calibration, batch_size=batch_size, provider=provider, measures=frozenset({"aura_mi"})
    )
    by_tensor = {p.point.tensor: p.values.get("aura_mi") for p in stats.points}
    weights = {}
    for layer in layers:
        value = by_tensor.get(layer.tensor)
        if value is None or not np.isfinite(value).all() or float(np.sum(np.maximum(value, 0))) <= 0:
            logger.info("no aura MI for %s: its saliency map is the plain channel mean", layer.tensor)
            continue
        weights[layer.tensor] = np.maximum(np.asarray(value, dtype=np.float64), 0.0)
    return weights
