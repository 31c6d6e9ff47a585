"""Regression rows for one consumer: im2col patches at sampled output positions, or Gemm input rows."""

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
    def of(cls, attrs: dict, weight_shape: tuple[int, ...]) -> "ConvGeometry | None":
        if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET") or len(weight_shape) != 4:
            return None
        pads = tuple(attrs.get("pads", (0, 0, 0, 0)))
        return cls(
            kernel=(int(weight_shape[2]), int(weight_shape[3])),
            strides=tuple(int(s) for s in attrs.get("strides", (1, 1))),
            pads=tuple(int(p) for p in pads),
            dilations=tuple(int(d) for d in attrs.get("dilations", (1, 1))),
            groups=int(attrs.get("group", 1)),
        )


def sample_positions(images: np.ndarray, height: int, width: int, per_image: int, seed: int) -> np.ndarray:
    """(rows, 3) of (image, y, x): the same positions whatever the batch size, seeded per image index."""
    rows = []
    for image in images.tolist():
        rng = np.random.default_rng((seed, image))
        flat = np.arange(height * width) if height * width <= per_image else rng.choice(height * width, per_image, replace=False)
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
