"""Saliency maps, their spatial aura entropy, and the superization curve (docs/methods.md#superization-curve).

The gradient-free saliency map of a layer for one image is the mean of its channels' activation maps
(optionally a weighted mean, e.g. by each channel's aura MI). Its entropy is the spatial aura entropy of
section 1: the map is quantised on its own min-max range (``quantize_maps``) and its 8-neighbour aura
matrix is normalised (``image_aura_entropy``); a constant map is dead and has entropy 0.

H_l is the mean of that entropy over the images, and the superization curve is Delta H_l = H_l - H_(l-1):
negative where signs aggregate into supersigns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edgeprune.maps.aura import image_aura_entropy
from edgeprune.maps.quantize import default_levels, match_resolution, quantize_maps
from edgeprune.semiotic.layers import SaliencyLayer


def saliency_maps(
    activations: np.ndarray,
    positions: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    channel_axis: int = 1,
) -> np.ndarray:
    """(N, 1, H, W) float64 maps: the (weighted) mean over the channels of ``activations`` (N, C, H, W, or
    N, H, W, C with ``channel_axis`` 3: a channels-last map gives the maps of its N, C, H, W transpose).

    ``positions`` (bool per channel) keeps only those channels: what the pruned layer still has. Weights
    that are all zero on the kept channels fall back to the plain mean. The sum runs as one matrix product
    in the activations' own precision (float32 from ONNX Runtime), without copying the kept channels out
    (nor, channels-last, transposing the map: the product runs over its last axis in place).
    """
    maps = np.asarray(activations)
    if maps.ndim != 4:
        raise ValueError(f"expected activations of shape (N, C, H, W), got {maps.shape}")
    if channel_axis not in (1, 3):
        raise ValueError(f"a map's channels are on axis 1 or 3, not {channel_axis}")
    kept = np.ones(maps.shape[channel_axis], dtype=bool) if positions is None else np.asarray(positions, dtype=bool)
    if not kept.any():
        raise ValueError("a saliency map needs at least one channel")
    w = kept.astype(np.float64)
    if weights is not None and float(np.sum(np.asarray(weights, dtype=np.float64)[kept])) > 0:
        w = np.where(kept, np.asarray(weights, dtype=np.float64), 0.0)
    w /= w.sum()
    dtype = maps.dtype if maps.dtype in (np.float32, np.float64) else np.float64
    maps = maps.astype(dtype, copy=False)
    if channel_axis == 3:
        n, h, width, c = maps.shape
        summed = np.matmul(maps.reshape(n, h * width, c), w.astype(dtype))
        return summed.reshape(n, 1, h, width).astype(np.float64)
    n, c, h, width = maps.shape
    flat = maps.reshape(n, c, h * width)
    return np.matmul(w.astype(dtype)[None, None, :], flat).reshape(n, 1, h, width).astype(np.float64)


def pooled(maps: np.ndarray, size: int) -> np.ndarray:
    """``maps`` (N, 1, H, W) brought to at most ``size`` x ``size`` the way two layers' maps are matched for
    the aura MI (`match_resolution`: centre-crop to a multiple, then average-pool); smaller maps stay as they are."""
    n, _, h, w = maps.shape
    target = np.empty((n, 1, min(h, size), min(w, size)))
    return match_resolution(maps, target)[0]


def map_entropy(maps: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per map of ``maps`` (N, 1, H, W): spatial aura entropy in bits (N,) and whether it is dead (N,)."""
    codes, dead = quantize_maps(maps, levels)
    return image_aura_entropy(codes, levels, dead)[:, 0], dead[:, 0]


@dataclass(frozen=True)
class LayerEntropy:
    """One point of the curve: H = mean saliency-map entropy over ``images``, and the share of dead maps."""

    name: str
    tensor: str
    groups: tuple[str, ...]
    channels: int
    height: int
    width: int
    levels: int
    entropy: float
    dead_fraction: float


@dataclass(frozen=True)
class SuperizationCurve:
    layers: tuple[LayerEntropy, ...]
    images: int
    saliency: str  # "mean", "aura-mi" or "grad-cam"

    @property
    def entropies(self) -> np.ndarray:
        return np.array([layer.entropy for layer in self.layers], dtype=np.float64)

    @property
    def deltas(self) -> np.ndarray:
        """Delta H_l = H_l - H_(l-1) for l = 1..L-1 (one fewer than the layers)."""
        return np.diff(self.entropies)

    def to_dict(self) -> dict:
        h, d = self.entropies, self.deltas
        layers = []
        for i, layer in enumerate(self.layers):
            row = dict(layer.__dict__, groups=list(layer.groups), index=i)
            row["delta"] = None if i == 0 else float(d[i - 1])
            layers.append(row)
        return {
            "saliency": self.saliency,
            "images": self.images,
            "entropy": [float(v) for v in h],
            "superization": [float(v) for v in d],
            "total_delta": float(h[-1] - h[0]) if len(h) else 0.0,
            "superizing_layers": int(np.sum(d < 0)),
            "layers": layers,
        }


def curve_distance(a: SuperizationCurve | np.ndarray, b: SuperizationCurve | np.ndarray, kind: str = "steps") -> float:
    """How far two curves of the same layers are apart: the mean absolute difference of the anchored curve
    (H_0, Delta H_1, ..., Delta H_(L-1)), i.e. of the first layer's entropy and of every superization step.

    Anchoring at H_0 makes a change of the first layer count too; comparing steps rather than levels means a
    change that shifts every later layer equally counts once, where it happens. ``kind="levels"`` compares
    the entropies themselves instead: the mean of |H_l - H'_l|.
    """
    ha = a.entropies if isinstance(a, SuperizationCurve) else np.asarray(a, dtype=np.float64)
    hb = b.entropies if isinstance(b, SuperizationCurve) else np.asarray(b, dtype=np.float64)
    if ha.shape != hb.shape:
        raise ValueError(f"curves of different lengths: {ha.shape} and {hb.shape}")
    if ha.size == 0:
        return 0.0
    if kind == "levels":
        return float(np.mean(np.abs(ha - hb)))
    if kind != "steps":
        raise ValueError(f"unknown curve distance '{kind}'; choose steps or levels")
    anchored = np.concatenate([[ha[0] - hb[0]], np.diff(ha) - np.diff(hb)])
    return float(np.mean(np.abs(anchored)))


class CurveAccumulator:
    """Streams batches of layer activations into per-layer entropy sums (bounded memory)."""

    def __init__(
        self,
        layers: Sequence[SaliencyLayer],
        levels: int | None = None,
        weights: Mapping[str, np.ndarray] | None = None,
        resolution: int | None = None,
    ) -> None:
        """``resolution``: average-pool every saliency map to at most this many sites a side before measuring,
        so layers of different sizes are compared at one scale (None: each at its own size)."""
        self.layers, self.levels, self.weights = tuple(layers), levels, dict(weights or {})
        self.resolution = resolution
        self.sums = np.zeros(len(self.layers))
        self.dead = np.zeros(len(self.layers))
        self.sizes: list[tuple[int, int, int] | None] = [None] * len(self.layers)
        self.images = 0

    def update(
        self, values: Mapping[str, np.ndarray], positions: Mapping[str, np.ndarray | None] | None = None
    ) -> None:
        """``values``: each layer's activations for one batch; ``positions``: kept channels per tensor."""
        count = None
        for i, layer in enumerate(self.layers):
            acts = values[layer.tensor]
            kept = positions.get(layer.tensor) if positions else None
            maps = saliency_maps(acts, kept, self.weights.get(layer.tensor), layer.channel_axis)
            if self.resolution:
                maps = pooled(maps, self.resolution)
            h, w = maps.shape[2:]
            levels = self.levels or default_levels(h, w)
            entropy, dead = map_entropy(maps, levels)
            self.sums[i] += float(entropy.sum())
            self.dead[i] += float(dead.sum())
            self.sizes[i] = (int(h), int(w), int(levels))
            count = len(maps)
        self.images += count or 0

    def curve(self, saliency: str = "mean") -> SuperizationCurve:
        n = max(self.images, 1)
        points = []
        for i, layer in enumerate(self.layers):
            h, w, levels = self.sizes[i] or (0, 0, 0)
            points.append(
                LayerEntropy(
                    layer.name,
                    layer.tensor,
                    layer.groups,
                    layer.channels,
                    h,
                    w,
                    levels,
                    float(self.sums[i] / n),
                    float(self.dead[i] / n),
                )
            )
        return SuperizationCurve(tuple(points), self.images, saliency)
