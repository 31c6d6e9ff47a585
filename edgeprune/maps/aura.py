"""Grey-level aura matrices over the 8-neighbourhood, and their entropy (docs/methods.md#spatial-aura-entropy).

The aura matrix of a quantised map X counts the ordered pairs of 8-neighbours (s, r) with X_s = g and
X_r = h: the sum of the co-occurrence matrices of the 8 displacements (Elfadel and Picard). Borders are
not padded, so a site only pairs with its in-bounds neighbours; the total of one map's matrix is the
number of ordered neighbour pairs, 8HW - 6(H + W) + 4 for H, W >= 2.

Vectorised: each of the 4 "forward" displacements (right, down, down-right, down-left) is one pass
that builds a combined index (map id, g, h) for every pair and one ``bincount`` over all maps at
once; the 4 backward displacements are the transposes, which makes the matrix symmetric by
construction. Counts add over images, so a per-channel streaming total is the sum over the image axis.
"""

from __future__ import annotations

import numpy as np

from edgeprune.maps.quantize import check_codes, check_levels

# (dy, dx) of the forward half of the 8-neighbourhood; the other half is their negatives.
FORWARD_OFFSETS: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (1, 1), (1, -1))
NEIGHBOUR_OFFSETS: tuple[tuple[int, int], ...] = FORWARD_OFFSETS + tuple((-y, -x) for y, x in FORWARD_OFFSETS)


def _shifted_pair(codes: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """The codes at s and at r = s + (dy, dx), over all s for which r is in bounds (dy >= 0)."""
    h, w = codes.shape[-2:]
    x0, x1 = max(0, -dx), w - max(0, dx)
    s = codes[..., 0 : h - dy, x0:x1]
    r = codes[..., dy:h, x0 + dx : x1 + dx]
    return s, r


def neighbour_pair_count(h: int, w: int) -> int:
    """Ordered 8-neighbour pairs in one h x w map without padding (the total of its aura matrix)."""
    total = 0
    for dy, dx in FORWARD_OFFSETS:
        total += max(0, h - abs(dy)) * max(0, w - abs(dx))
    return 2 * total


def aura_counts(codes: np.ndarray, levels: int, dead: np.ndarray | None = None) -> np.ndarray:
    """Aura matrix of every map of ``codes`` (N, C, H, W): int64 (N, C, G, G), symmetric.

    ``dead`` (N, C) bool, from :func:`quantize_maps`, zeroes the matrices of dead maps (a dead map
    contributes no pairs). Without it, an all-zero-code map (which is what a dead map is) would
    count every pair in cell (0, 0); a live map always has a pair on a nonzero code.
    """
    levels = check_levels(levels)
    codes = check_codes(codes, levels)
    n, c, h, w = codes.shape
    maps = n * c
    cells = levels * levels
    pair_dtype = np.uint8 if cells <= 256 else np.uint16  # g * G + h fits in the narrowest type
    narrow = codes.astype(pair_dtype, copy=False)
    base = (np.arange(maps, dtype=np.int64) * cells).reshape(n, c, 1, 1)
    half = np.zeros(maps * cells, dtype=np.int64)
    for dy, dx in FORWARD_OFFSETS:
        s, r = _shifted_pair(narrow, dy, dx)
        if s.size == 0:
            continue
        pair = s * pair_dtype(levels)
        pair += r
        index = pair.astype(np.int64)
        index += base
        half += np.bincount(index.ravel(), minlength=maps * cells)
    half = half.reshape(n, c, levels, levels)
    counts = half + half.swapaxes(-1, -2)
    if dead is not None:
        dead = np.asarray(dead, dtype=bool)
        if dead.shape != (n, c):
            raise ValueError(f"dead must have shape {(n, c)}, got {dead.shape}")
        counts[dead] = 0
    return counts


def entropy_bits(counts: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Shannon entropy in bits of ``counts`` normalised over ``axes``; 0 where the counts are all zero."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=axes, keepdims=True)
    p = counts / np.where(total > 0, total, 1.0)
    terms = np.zeros_like(p)
    np.log2(p, out=terms, where=p > 0)  # 0 log 0 = 0, and no log of the empty cells
    terms *= p
    return np.maximum(-terms.sum(axis=axes), 0.0)


def aura_entropy(counts: np.ndarray) -> np.ndarray:
    """Spatial aura entropy in bits of aura matrices ``counts`` (..., G, G): H = -sum p log2 p, p = a / sum(a).

    Uniform over the G*G cells gives the maximum log2(G*G); a single occupied cell, or an all-zero
    matrix (a dead or 1x1 map), gives 0.
    """
    counts = np.asarray(counts)
    if counts.ndim < 2 or counts.shape[-1] != counts.shape[-2]:
        raise ValueError(f"expected aura matrices of shape (..., G, G), got shape {counts.shape}")
    return entropy_bits(counts, (-2, -1))


def image_aura_entropy(codes: np.ndarray, levels: int, dead: np.ndarray | None = None) -> np.ndarray:
    """Per-image, per-channel aura entropy (N, C) of quantised maps: what the RL reward averages."""
    return aura_entropy(aura_counts(codes, levels, dead))
