"""The original model's values of chosen tensors at the sampled sites, spooled during the capture pass.

Reconstruction fits each layer to an original tensor (its output, the residual sum it feeds, or the bias
Add of a MatMul) at the sites it samples. The capture pass of the original model computes those tensors
anyway, so it keeps their rows, every channel, and reconstruction takes the kept channels' columns from
them instead of running the original model once more (`reconstruct.schedule`). The rows go into spools
(in memory within a budget, in temporary files beyond it), so memory stays bounded in the images; most of
them are computed from the consumers' rows, not asked of the session (`capture.reference_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeprune.capture.rows import linear_positions, linear_rows, outputs_at, sample_positions
from edgeprune.capture.spool import Spool

LAYOUTS = ("map", "last", "rows")  # N,C,H,W at sampled (y, x); N,...,C at sampled sites; N,C: one row an image


@dataclass(frozen=True)
class SiteTensor:
    """A tensor to keep at the sampled sites, and how its rows are cut (one of `LAYOUTS`)."""

    name: str
    layout: str


@dataclass
class SiteRows:
    """A tensor's rows (every channel) at ``positions`` ((image, y, x); None: one row per image), in order."""

    positions: np.ndarray | None
    spool: Spool

    def matches(self, positions: np.ndarray | None, images: int) -> bool:
        """Whether these are the rows of ``positions`` (None: one per image, ``images`` of them)."""
        if positions is None or self.positions is None:
            return positions is None and self.positions is None and self.spool.rows == images
        return bool(np.array_equal(self.positions, positions))


def site_positions(shape, layout: str, images: int, per_image: int, seed: int) -> np.ndarray | None:
    """The sampled sites of a tensor of ``shape`` cut by ``layout``: (image, y, x) of a map, (image, site,
    0) of a channels-last tensor, None for one row per image."""
    if layout == "map":
        return sample_positions(np.arange(images), int(shape[2]), int(shape[3]), per_image, seed)
    if layout == "last":
        return sample_positions(np.arange(images), linear_positions(shape), 1, per_image, seed)
    return None


def rows_at(values: np.ndarray, layout: str, first: int, at: np.ndarray | None) -> np.ndarray:
    """(rows, channels) of a batch ``values`` whose first image is ``first``, at the sites ``at`` of it."""
    if layout == "map":
        assert at is not None
        return outputs_at(values, first, at)
    if layout == "last":
        assert at is not None
        return linear_rows(values, first, at)
    return values.reshape(len(values), -1)


def in_batch(positions: np.ndarray, first: int, count: int) -> np.ndarray:
    """The sites of images first .. first + count - 1."""
    return positions[(positions[:, 0] >= first) & (positions[:, 0] < first + count)]
