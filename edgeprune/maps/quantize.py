"""Per-map quantisation of activation maps into grey levels, and matching two layers' resolutions.

Every map (one channel of one image) is quantised on its own min-max range, so the aura statistics
measure spatial structure, not scale: a map that is 10x larger everywhere gets the same codes. A map
with no spread is *dead*: it gets all-zero codes and the callers skip it (no aura pairs, no joint
counts), so a dead map can never make its channel look informative.
"""

from __future__ import annotations

import numpy as np

MAX_LEVELS = 256  # codes are uint8


def check_levels(levels: int) -> int:
    """The number of grey levels as an int, or a ValueError that says the valid range."""
    levels = int(levels)
    if not 2 <= levels <= MAX_LEVELS:
        raise ValueError(f"levels must be between 2 and {MAX_LEVELS}, got {levels}")
    return levels


def check_codes(codes: np.ndarray, levels: int) -> np.ndarray:
    """``codes`` as an (N, C, H, W) array of integer codes below ``levels``, or a ValueError."""
    codes = np.asarray(codes)
    if codes.ndim != 4 or codes.dtype.kind not in "ui":
        raise ValueError(f"expected integer codes of shape (N, C, H, W), got {codes.dtype} {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() >= levels):
        raise ValueError(f"codes must lie in [0, {levels}), got [{codes.min()}, {codes.max()}]")
    return codes


def default_levels(h: int, w: int) -> int:
    """Grey levels for maps of ``h`` x ``w`` sites: 8, fewer when a map has too few pairs to fill G x G.

    A map of n sites gives about 8n ordered neighbour pairs for G*G aura cells. The choice keeps at
    least ~2 pairs per cell on a single map:

    - more than 16 sites (larger than 4x4, e.g. 5x5 or 2x9): 8 levels (64 cells, >= 144 pairs on 5x5);
    - 5 to 16 sites (3x3 .. 4x4, 2x4 ...): 4 levels (16 cells, 40 pairs on 3x3, 84 on 4x4);
    - 4 sites or fewer (2x2, 1x4, 1x1): 2 levels (4 cells, 12 pairs on 2x2).

    A 1x1 map has no neighbours: its aura matrix is empty, and since one value is always "constant"
    it is dead by definition (codes 0, entropy 0, counted in the dead fraction). Spatial criteria are
    therefore meaningless for 1x1 layers (after a global pool): scorers should fall back to a
    non-spatial criterion there. 2 levels is returned for it only so that callers need no special case.
    """
    sites = int(h) * int(w)
    if sites <= 0:
        raise ValueError(f"a map needs at least one site, got {h}x{w}")
    if sites > 16:
        return 8
    if sites > 4:
        return 4
    return 2


def quantize_maps(maps: np.ndarray, levels: int = 8, *, min_range: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Quantise each (image, channel) map of ``maps`` (N, C, H, W) to codes 0..levels-1 on its min-max range.

    code = floor((x - min) / (max - min) * levels), computed in float64, with the map's maximum (and any
    rounding up to ``levels``) put on the top level ``levels - 1``, so the minimum is always on code 0
    and the maximum on the top code. Returns ``(codes uint8 (N, C, H, W), dead bool (N, C))``.

    A map is dead when ``max - min <= min_range`` (default 0: exactly constant) or when it holds a
    non-finite value; its codes are all 0. A ``min_range`` above 0 treats near-constant maps (float
    noise on a switched-off channel) as dead instead of as high-entropy noise.
    """
    levels = check_levels(levels)
    maps = np.asarray(maps)
    if maps.ndim != 4:
        raise ValueError(f"expected maps of shape (N, C, H, W), got shape {maps.shape}")
    n, c, h, w = maps.shape
    if n * c == 0 or h * w == 0:
        return np.zeros(maps.shape, dtype=np.uint8), np.ones((n, c), dtype=bool)
    x = maps.reshape(n * c, h * w).astype(np.float64)  # a private copy, worked on in place
    lo = x.min(axis=1, keepdims=True)
    span = x.max(axis=1, keepdims=True) - lo
    dead = ~np.isfinite(span[:, 0]) | (span[:, 0] <= min_range)  # NaN or inf makes the span non-finite
    if dead.any():
        x[dead] = 0.0
        lo[dead] = 0.0
        span[dead] = 1.0
    x -= lo
    x /= span
    x *= levels
    np.floor(x, out=x)
    np.minimum(x, levels - 1, out=x)
    codes = x.astype(np.uint8).reshape(n, c, h, w)
    return codes, dead.reshape(n, c)


def _fit_axis(a: np.ndarray, axis: int, target: int) -> np.ndarray:
    """Shrink ``a`` along ``axis`` to ``target``: centre-crop to a multiple of it, then average-pool."""
    size = a.shape[axis]
    if size == target:
        return a
    factor = size // target
    keep = target * factor
    start = (size - keep) // 2
    a = np.take(a, np.arange(start, start + keep), axis=axis)
    if factor == 1:
        return a
    shape = a.shape[:axis] + (target, factor) + a.shape[axis + 1 :]
    return a.reshape(shape).mean(axis=axis + 1)


def match_resolution(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bring two map batches (N, Cx, H1, W1) and (N, Cy, H2, W2) to one common H x W, per axis.

    Along each spatial axis the larger of the two is shrunk to the smaller size S from its size L:
    with f = L // S, it is centre-cropped to S * f (nothing to crop when S divides L, the usual
    stride-2 case: 28 -> 14 is a plain 2x average pool) and average-pooled by f. When f is 1 (7 vs 4,
    from a padded stride-2 conv) this is a plain centre crop, the odd extra row going to the end.
    Pooling is done on the float maps, before quantisation. Inputs already of one size come back as is.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 4 or y.ndim != 4:
        raise ValueError(f"expected two (N, C, H, W) batches, got shapes {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"the two batches hold different numbers of images: {x.shape[0]} and {y.shape[0]}")
    for axis in (2, 3):
        small = min(x.shape[axis], y.shape[axis])
        x, y = _fit_axis(x, axis, small), _fit_axis(y, axis, small)
    return x, y
