"""Streaming statistics of one captured layer, in memory bounded whatever the number of images.

Everything kept is a sum (integer counts or float64 sums), so updating batch by batch, or merging two
accumulators fed with disjoint images, gives the same result as one pass over all images (integers
exactly, float sums up to rounding). The one exception is ``keep_image_entropy``, which keeps one
(N, C) row per image on purpose: the RL reward needs the per-image values.

Dead maps (no spread on an image) are counted in ``dead_fraction`` and contribute nothing else: no
aura pairs, no cross-aura or histogram pairs, no label count; their per-image entropy is 0 and is
included in ``mean_image_entropy``. So a channel dead on every image has entropy 0, MI 0 and
dead_fraction 1, and dead maps can only lower a channel's scores, never raise them. Activation sums
include every map, dead or not (a dead ReLU map is genuinely zero).

The MI results are None when the accumulator was built without what they need (``next_channels`` for
``aura_mi`` and ``hist_mi``, ``n_classes`` for ``label_mi``): "not measured", not "zero". They cover the
images whose update carried ``y`` (or ``labels``); with none, their counts are empty and the MI is 0.
"""

from __future__ import annotations

import numpy as np

from edgeprune.maps.aura import aura_counts, aura_entropy
from edgeprune.maps.information import (
    aura_mi_importance,
    cross_aura_counts,
    default_stride,
    entropy_bin_codes,
    histogram_joint_counts,
    label_joint_counts,
    label_mi,
)
from edgeprune.maps.quantize import check_levels, match_resolution, quantize_maps


class LayerAccumulator:
    """Sums over images of one layer's maps x (N, C, H, W), optionally with its consumer's maps y and labels.

    ``levels`` is used for x and for y (after :func:`match_resolution`); see ``default_levels``.
    ``min_range`` is passed to :func:`quantize_maps` (maps with a smaller spread count as dead).
    ``cross`` and ``histogram`` choose which pair statistics with y are counted (each costs a matrix
    product per batch): a criterion that reads only one of them need not pay for the other.
    ``stride`` samples the sites s of those pair statistics on a grid of that step (1: every site; None:
    :func:`default_stride` of the compared maps); the per-channel aura statistics always use every site.
    ``entropy`` False skips the per-channel aura matrices (their entropies are then None, "not measured")
    for criteria that do not read them; label MI needs them, so ``n_classes`` turns them back on.
    """

    def __init__(
        self,
        channels: int,
        levels: int,
        next_channels: int | None = None,
        n_classes: int | None = None,
        label_bins: int = 16,
        keep_image_entropy: bool = False,
        *,
        min_range: float = 0.0,
        backend: str = "auto",
        cross: bool = True,
        histogram: bool = True,
        stride: int | None = 1,
        entropy: bool = True,
    ) -> None:
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        if label_bins < 1:
            raise ValueError(f"label_bins must be at least 1, got {label_bins}")
        self.channels = int(channels)
        self.levels = check_levels(levels)
        self.next_channels = None if next_channels is None else int(next_channels)
        self.n_classes = None if n_classes is None else int(n_classes)
        self.label_bins = int(label_bins)
        self.keep_image_entropy = bool(keep_image_entropy)
        self.min_range = float(min_range)
        self.backend = backend
        self.stride = stride
        g, c = self.levels, self.channels
        self.images = 0
        self.positions = 0  # sites per channel seen so far: sum over images of H*W
        self.aura = np.zeros((c, g, g), dtype=np.int64) if entropy or n_classes is not None else None
        self.dead = np.zeros(c, dtype=np.int64)
        self.entropy_sum = np.zeros(c, dtype=np.float64)
        self.sum_x = np.zeros(c, dtype=np.float64)
        self.sum_abs = np.zeros(c, dtype=np.float64)
        self.sum_sq = np.zeros(c, dtype=np.float64)
        cy = self.next_channels
        self.cross = None if cy is None or not cross else np.zeros((c, cy, g, g), dtype=np.int64)
        self.hist = None if cy is None or not histogram else np.zeros((c, cy, g, g), dtype=np.int64)
        k = self.n_classes
        self.label = None if k is None else np.zeros((c, self.label_bins, k), dtype=np.int64)
        self._image_entropy: list[np.ndarray] = []

    def update(self, x: np.ndarray, y: np.ndarray | None = None, labels: np.ndarray | None = None) -> None:
        """Add a batch: x (N, C, H, W); y (N, Cy, H', W') the consumer's maps; labels (N,) class ids."""
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected x of shape (N, {self.channels}, H, W), got {x.shape}")
        if y is not None and self.cross is None and self.hist is None:
            raise ValueError("y was given but the accumulator was built without next_channels")
        if labels is not None and self.label is None:
            raise ValueError("labels were given but the accumulator was built without n_classes")
        n, _, h, w = x.shape
        codes, dead = quantize_maps(x, self.levels, min_range=self.min_range)
        self.dead += dead.sum(axis=0)
        entropy = None
        if self.aura is not None:
            per_image = aura_counts(codes, self.levels, dead)
            entropy = aura_entropy(per_image)
            self.aura += per_image.sum(axis=0)
            self.entropy_sum += entropy.sum(axis=0)
            if self.keep_image_entropy:
                self._image_entropy.append(entropy)
        flat = x.reshape(n, self.channels, h * w).astype(np.float64, copy=False)
        self.sum_x += flat.sum(axis=(0, 2))
        self.sum_abs += np.abs(flat).sum(axis=(0, 2))
        self.sum_sq += np.square(flat).sum(axis=(0, 2))
        self.images += n
        self.positions += h * w * n
        if y is not None:
            self._add_pairs(x, codes, dead, np.asarray(y))
        if labels is not None:
            assert entropy is not None and self.n_classes is not None  # n_classes turns the aura matrices on
            stat = entropy_bin_codes(entropy, self.levels, self.label_bins, dead)
            self.label += label_joint_counts(stat, np.asarray(labels), self.n_classes, self.label_bins)

    def _add_pairs(self, x: np.ndarray, codes: np.ndarray, dead: np.ndarray, y: np.ndarray) -> None:
        if y.ndim != 4 or y.shape[:2] != (x.shape[0], self.next_channels):
            raise ValueError(f"expected y of shape ({x.shape[0]}, {self.next_channels}, H, W), got {y.shape}")
        x_fit, y_fit = match_resolution(x, y)
        if x_fit.shape != x.shape:  # x was pooled or cropped: quantise what is compared
            codes, dead = quantize_maps(x_fit, self.levels, min_range=self.min_range)
        codes_y, dead_y = quantize_maps(y_fit, self.levels, min_range=self.min_range)
        args = (codes, codes_y, self.levels, dead, dead_y)
        stride = self.stride or default_stride(*codes.shape[2:])
        if self.cross is not None:
            self.cross += cross_aura_counts(*args, backend=self.backend, stride=stride)
        if self.hist is not None:
            self.hist += histogram_joint_counts(*args, backend=self.backend, stride=stride)

    def merge(self, other: LayerAccumulator) -> LayerAccumulator:
        """Add ``other``'s sums (images disjoint from ours) into this accumulator; returns ``self``."""
        mine = (
            self.channels,
            self.levels,
            self.next_channels,
            self.n_classes,
            self.label_bins,
            self.cross is None,
            self.hist is None,
        )
        theirs = (
            other.channels,
            other.levels,
            other.next_channels,
            other.n_classes,
            other.label_bins,
            other.cross is None,
            other.hist is None,
        )
        if mine != theirs or self.keep_image_entropy != other.keep_image_entropy:
            raise ValueError(
                "cannot merge accumulators built differently: (channels, levels, next_channels, n_classes, "
                f"label_bins, no cross, no histogram) {mine} vs {theirs}, keep_image_entropy "
                f"{self.keep_image_entropy} vs {other.keep_image_entropy}"
            )
        self.images += other.images
        self.positions += other.positions
        for name in ("aura", "dead", "entropy_sum", "sum_x", "sum_abs", "sum_sq", "cross", "hist", "label"):
            mine_sum = getattr(self, name)
            if mine_sum is not None:
                mine_sum += getattr(other, name)
        self._image_entropy.extend(other._image_entropy)
        return self

    def _need_images(self) -> None:
        if self.images == 0:
            raise ValueError("no images accumulated yet: call update() first")

    def aura_entropy(self) -> np.ndarray | None:
        """(C,) spatial aura entropy of each channel's aura matrix summed over all images, or None."""
        self._need_images()
        return None if self.aura is None else aura_entropy(self.aura)

    def mean_image_entropy(self) -> np.ndarray | None:
        """(C,) mean over images of the per-image aura entropy (dead maps count as 0), or None."""
        self._need_images()
        return None if self.aura is None else self.entropy_sum / self.images

    def image_entropy(self) -> np.ndarray:
        """(N, C) per-image aura entropies in update order; needs ``keep_image_entropy``."""
        if not self.keep_image_entropy:
            raise ValueError("per-image entropies were not kept: build with keep_image_entropy=True")
        if not self._image_entropy:
            return np.zeros((0, self.channels), dtype=np.float64)
        return np.concatenate(self._image_entropy, axis=0)

    def dead_fraction(self) -> np.ndarray:
        """(C,) fraction of images on which the channel's map was dead."""
        self._need_images()
        return self.dead / self.images

    def mean_activation(self) -> np.ndarray:
        """(C,) mean of x over all images and positions."""
        self._need_images()
        return self.sum_x / self.positions

    def mean_abs_activation(self) -> np.ndarray:
        """(C,) mean of |x| over all images and positions."""
        self._need_images()
        return self.sum_abs / self.positions

    def mean_square_activation(self) -> np.ndarray:
        """(C,) mean of x**2 over all images and positions."""
        self._need_images()
        return self.sum_sq / self.positions

    def aura_mi(self) -> np.ndarray | None:
        """(C,) aura-MI importance: sum over the consumer's channels j of MI(X_i; Y_j), or None."""
        self._need_images()
        return None if self.cross is None else aura_mi_importance(self.cross)

    def hist_mi(self) -> np.ndarray | None:
        """(C,) the histogram baseline: sum over j of the per-pixel MI(X_i; Y_j), or None."""
        self._need_images()
        return None if self.hist is None else aura_mi_importance(self.hist)

    def label_mi(self) -> np.ndarray | None:
        """(C,) MI between each channel's binned per-image aura entropy and the label, or None."""
        self._need_images()
        return None if self.label is None else label_mi(self.label)
