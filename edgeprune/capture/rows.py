"""Regression rows for one consumer: im2col patches at sampled output positions, Gemm input rows, or a
channels-last MatMul's input vectors at sampled sites.

Both the refit statistics of scoring (`capture.grams`) and reconstruction draw their rows here, with the same
seeded positions, so the channels scoring picks are judged on the rows reconstruction then fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConvGeometry:
    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    dilations: tuple[int, int]
    groups: int

    @classmethod
    def of(cls, attrs: dict, weight_shape: tuple[int, ...]) -> ConvGeometry | None:
        if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET") or len(weight_shape) != 4:
            return None
        top, left, bottom, right = (int(p) for p in attrs.get("pads", (0, 0, 0, 0)))
        (sh, sw), (dh, dw) = (tuple(int(v) for v in attrs.get(name, (1, 1))) for name in ("strides", "dilations"))
        return cls(
            kernel=(int(weight_shape[2]), int(weight_shape[3])),
            strides=(sh, sw),
            pads=(top, left, bottom, right),
            dilations=(dh, dw),
            groups=int(attrs.get("group", 1)),
        )


def sample_positions(images: np.ndarray, height: int, width: int, per_image: int, seed: int) -> np.ndarray:
    """(rows, 3) of (image, y, x): the same positions whatever the batch size, seeded per image index."""
    rows = []
    for image in images.tolist():
        rng = np.random.default_rng((seed, image))
        flat = (
            np.arange(height * width)
            if height * width <= per_image
            else rng.choice(height * width, per_image, replace=False)
        )
        rows.append(np.stack([np.full(len(flat), image), flat // width, flat % width], axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, 3), dtype=np.int64)


def patches(x: np.ndarray, first_image: int, positions: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """im2col rows (len(positions), C*kh*kw) of batch ``x`` whose first image has index ``first_image``."""
    top, left, bottom, right = geometry.pads
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    (kh, kw), (sh, sw), (dh, dw) = geometry.kernel, geometry.strides, geometry.dilations
    span = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, span, axis=(2, 3))[..., ::dh, ::dw]  # a view
    n = positions[:, 0] - first_image
    gathered = windows[n, :, positions[:, 1] * sh, positions[:, 2] * sw]  # (rows, C, kh, kw)
    return gathered.reshape(len(positions), -1)


def outputs_at(y: np.ndarray, first_image: int, positions: np.ndarray) -> np.ndarray:
    """(rows, C_out) of conv outputs ``y`` at the sampled positions."""
    return y[positions[:, 0] - first_image, :, positions[:, 1], positions[:, 2]]


def linear_positions(shape) -> int:
    """How many input rows one image gives a MatMul by a stored matrix: one per index of the axes between
    the batch and the last (the H*W sites of a channels-last N,H,W,C map; 1 for an N,C matrix). They are
    sampled like a conv's output sites, with ``sample_positions(images, count, 1, ...)``."""
    count = 1
    for dim in tuple(shape)[1:-1]:
        count *= int(dim)
    return count


def linear_rows(x: np.ndarray, first_image: int, positions: np.ndarray) -> np.ndarray:
    """(len(positions), C) rows of ``x`` (N, ..., C), channels on its last axis, at sampled (image, site, 0)."""
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    return flat[positions[:, 0] - first_image, positions[:, 1]]
