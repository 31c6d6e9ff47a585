"""Predicted latency of a plan on a device: measured tables where the layer was profiled, the roofline
otherwise, the sum corrected by the whole model measured on the device: a factor (the measured whole model
against its sum of layers), or, where the model was also measured with every group cut to half, the line
through both points (a fixed part that no channel cut shrinks, plus a factor on the sum of layers).

Predictions are monotone non-decreasing in every kept count (noisy tables are made so on load), because the
selection strategies bisect on them; one prediction takes well under a millisecond on a 60-layer model.
A layer left with no input or no output channel is gone (its residual block was removed: depth pruning) and
costs nothing, its launch overhead included: that per-layer cost is what removing layers saves on a
launch-bound device, and what no channel cut can save.
"""

from __future__ import annotations

import bisect
import statistics
from dataclasses import dataclass

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.graph.model import ModelGraph
from edgeprune.hardware.layers import KeptCounts, LayerSpec, model_layers
from edgeprune.hardware.profile import DeviceProfile, LayerTable

BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


@dataclass(frozen=True)
class LayerLatency:
    node: str
    op: str
    cin: int
    cout: int
    macs: int
    ms: float  # after the whole-model factor
    source: str  # "table", "roofline", or "removed" (a layer of a removed block: 0 ms)


class Roofline:
    """max(compute, memory) time plus a fixed launch cost, per layer, on the device's figures (the launch cost
    measured on the device when its profile has one, else the roofline's estimate)."""

    def __init__(self, profile: DeviceProfile) -> None:
        roof = profile.roofline
        self.flops = profile.peak_flops * roof.efficiency
        self.bandwidth = roof.memory_bandwidth * roof.efficiency
        self.overhead_ms = profile.layer_overhead_us / 1000.0
        self.itemsize = BYTES[profile.precision]

    def ms(self, layer: LayerSpec, cin: float, cout: float) -> float:
        compute = 2.0 * layer.macs(cin, cout) / self.flops
        memory = (
            self.itemsize * (layer.activation_elements(cin, cout) + layer.weight_elements(cin, cout)) / self.bandwidth
        )
        return self.overhead_ms + 1000.0 * max(compute, memory)


class _Table:
    """Bilinear interpolation in a measured grid, monotone by construction; outside the grid the edge value
    is carried on by the roofline's shape (scaled to meet the table at its edge). Plain Python floats: the
    grids are tiny, and numpy's per-call overhead would dominate a prediction."""

    def __init__(self, table: LayerTable) -> None:
        grid = np.asarray(table.ms, dtype=np.float64)
        grid = np.maximum.accumulate(grid, axis=0)  # noise must not make fewer channels slower
        self.grid = np.maximum.accumulate(grid, axis=1).tolist()
        self.cin = [float(c) for c in table.cin]
        self.cout = [float(c) for c in table.cout]
        self.depthwise = table.depthwise

    def clamp(self, cin: float, cout: float) -> tuple[float, float]:
        if self.depthwise:
            c = min(max(cout, self.cin[0]), self.cin[-1])
            return c, c
        return min(max(cin, self.cin[0]), self.cin[-1]), min(max(cout, self.cout[0]), self.cout[-1])

    def at(self, cin: float, cout: float) -> float:
        """The interpolated value at a point inside the grid (``clamp`` first)."""
        g = self.grid
        if self.depthwise:
            i0, i1, t = _locate(self.cin, cout)
            return (1 - t) * g[i0][0] + t * g[i1][0]
        i0, i1, ti = _locate(self.cin, cin)
        j0, j1, tj = _locate(self.cout, cout)
        low = (1 - tj) * g[i0][j0] + tj * g[i0][j1]
        high = (1 - tj) * g[i1][j0] + tj * g[i1][j1]
        return (1 - ti) * low + ti * high


def _locate(axis: list[float], x: float) -> tuple[int, int, float]:
    """The grid cell around ``x`` and the position inside it, on [0, 1]."""
    if len(axis) == 1:
        return 0, 0, 0.0
    i = min(max(bisect.bisect_right(axis, x) - 1, 0), len(axis) - 2)
    return i, i + 1, min(max((x - axis[i]) / (axis[i + 1] - axis[i]), 0.0), 1.0)


class LatencyModel:
    """Predicts a plan's latency (ms) on one device for one model; ``predict`` takes the analysis' keep mask."""

    def __init__(self, profile: DeviceProfile, model: ModelGraph, analysis: ChannelAnalysis) -> None:
        self.profile = profile
        self.layers = model_layers(model, analysis)
        self._counts = KeptCounts(self.layers, analysis)
        self._roofline = Roofline(profile)
        self._tables = [
            _Table(profile.layers[layer.key]) if layer.key in profile.layers else None for layer in self.layers
        ]
        self._n_classes = len(analysis.class_group)
        self._full_counts = np.array([[layer.cin, layer.cout] for layer in self.layers], dtype=np.float64).reshape(
            -1, 2
        )
        self._is_conv = np.array([layer.op == "Conv" for layer in self.layers], dtype=bool)
        self.layer_sum_full = float(self._raw(np.ones(self._n_classes, dtype=bool)).sum())
        # prediction = fixed_ms + factor x the sum of layers (fixed_ms: what no channel cut changes)
        self.fixed_ms, self.factor, self.factor_source = self._correction(model.source_sha256)

    @property
    def table_coverage(self) -> float:
        """Fraction of the modelled layers that have a measured table."""
        return sum(t is not None for t in self._tables) / max(len(self._tables), 1)

    def predict(self, keep: np.ndarray) -> float:
        return self.fixed_ms + self.factor * float(self._raw(keep).sum())

    def layer_sum(self, keep: np.ndarray) -> float:
        """The plan's sum of layer times before the whole-model correction (what a measurement calibrates)."""
        return float(self._raw(keep).sum())

    def predict_full(self) -> float:
        return self.predict(np.ones(self._n_classes, dtype=bool))

    def breakdown(self, keep: np.ndarray) -> tuple[LayerLatency, ...]:
        counts = self._counts.counts(keep)
        raw = self._raw(keep, counts)
        return tuple(
            LayerLatency(
                layer.node,
                layer.op,
                int(round(ci)),
                int(round(co)),
                int(round(layer.macs(ci, co))),
                self.factor * float(ms),
                "removed" if min(ci, co) <= 0 else "table" if t is not None else "roofline",
            )
            for layer, t, (ci, co), ms in zip(self.layers, self._tables, counts, raw)
        )

    def gain_from_removed(self, keep: np.ndarray) -> tuple[float, float]:
        """(ms the plan saves by removing whole layers, ms it saves in all): how much of the predicted gain
        depth pruning gives; the rest comes from the channels cut in the layers that stay, summed layer by
        layer (a layer the plan leaves as it was adds exactly 0)."""
        full = self._raw(np.ones(self._n_classes, dtype=bool))
        counts = self._counts.counts(keep)
        now = self._raw(keep, counts)
        gone = np.minimum(counts[:, 0], counts[:, 1]) <= 0
        removed = self.factor * float(full[gone].sum())
        thinned = self.factor * float((full[~gone] - now[~gone]).sum())
        return removed, removed + thinned

    def _raw(self, keep: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
        counts = self._padded(self._counts.counts(keep) if counts is None else counts)
        out = np.empty(len(self.layers))
        roof = self._roofline.ms
        for i, (layer, table, (cin, cout)) in enumerate(zip(self.layers, self._tables, counts.tolist())):
            if cin <= 0 or cout <= 0:
                out[i] = 0.0  # removed with its residual block: no work and no launch
                continue
            if table is None:
                out[i] = roof(layer, cin, cout)
                continue
            edge = table.clamp(cin, cout)
            value = table.at(*edge)
            if edge != (cin, cout):
                value *= roof(layer, cin, cout) / roof(layer, *edge)
            out[i] = value
        return out

    def _padded(self, counts: np.ndarray) -> np.ndarray:
        """Conv channel counts rounded up to the device's alignment (never past the layer's own size): fast
        kernels pad channels to their block (NCHWc on CPUs, tensor-core tiles), so 61 channels cost what 64 do.
        Rounding up keeps the prediction monotone."""
        step = self.profile.alignment
        if step <= 1:
            return counts
        padded = np.minimum(np.ceil(counts / step - 1e-9) * step, self._full_counts)
        return np.where(self._is_conv[:, None], np.maximum(padded, counts), counts)

    def _correction(self, sha256: str) -> tuple[float, float, str]:
        """(fixed ms, factor, where they come from): the line through this model's two measured points when it
        was profiled with the second one, else no fixed part and the measured whole model over the sum of its
        layers (this model's when profiled, else the median of the profiled models', else 1: a roofline-only
        device)."""
        measured = self.profile.models.get(sha256)
        if measured is not None and self.layer_sum_full > 0:
            line = _line(measured, self.layer_sum_full)
            if line is not None:
                return *line, "this model measured on the device, whole and with every group at half"
            return 0.0, measured.ms / self.layer_sum_full, "this model measured on the device"
        others = [m.ms / m.layers_ms for m in self.profile.models.values() if m.layers_ms > 0]
        if others:
            return 0.0, statistics.median(others), f"median of {len(others)} profiled models"
        return 0.0, 1.0, "none (no whole model measured on this device)"


def _line(measured, layer_sum_full: float) -> tuple[float, float] | None:
    """(fixed ms, factor) of the line through the whole model's two measured points (full, every group at
    half) against their sums of layers; None without the second point, or where the two points do not give
    a fixed part and a factor that are both positive (noise larger than the difference: the plain factor)."""
    low, low_ms = measured.reduced_layers_ms, measured.reduced_ms
    if low <= 0 or low_ms <= 0 or layer_sum_full - low < 0.05 * layer_sum_full:
        return None
    factor = (measured.ms - low_ms) / (layer_sum_full - low)
    fixed = measured.ms - factor * layer_sum_full
    if factor <= 0 or fixed < 0:
        return None
    return fixed, factor


def latency_model(device: DeviceProfile, model: ModelGraph, analysis: ChannelAnalysis) -> LatencyModel:
    return LatencyModel(device, model, analysis)
