"""Aura mutual information between a layer and its consumer, its histogram baseline, and label MI.

``cross_aura_counts`` gives, for every pair (channel i of X, channel j of Y), the counts
b[i, j, g, h] of (s, r) with r in the 3x3 window of s (s included, no padding), X_i(s) = g and
Y_j(r) = h, summed over images (docs/methods.md#aura-mutual-information). All pairs come from one matrix product per
chunk of images: one-hot X as (rows, Cx*G) times the 3x3 window sums of one-hot Y as (rows, Cy*G), with
one row per (image, anchor site). The anchors are every site, or a regular grid of them (``stride``):
at stride 3 the anchors' windows tile the map, so every site of Y is still read, at a ninth of the rows. Entries are small integers, so float32 is exact while each chunk's counts
stay below 2**24 (each row adds at most 9 to an entry, so a chunk has fewer than 2**24 / 9 rows);
chunk results are added in int64. Dead maps get all-zero one-hot rows: a pair where either map is dead
on an image adds nothing. torch does the products when importable; numpy gives the same integers.
"""

from __future__ import annotations

import numpy as np

from edgeprune.maps.aura import entropy_bits
from edgeprune.maps.quantize import check_codes, check_levels

EXACT_F32 = 2**24  # every integer up to this is exact in float32
BACKENDS = ("auto", "torch", "numpy")


def _use_torch(backend: str) -> bool:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend == "numpy":
        return False
    try:
        import torch  # noqa: F401
    except ImportError:
        if backend == "torch":
            raise
        return False
    return True


def _one_hot(codes: np.ndarray, levels: int, dead: np.ndarray | None, dtype) -> np.ndarray:
    """(N, C, H, W) codes -> (N, H, W, C, G) one-hot, all-zero for dead maps (a lookup-table gather)."""
    table = np.zeros((levels + 1, levels), dtype=dtype)
    table[np.arange(levels), np.arange(levels)] = 1  # row `levels` stays zero: the dead-map code
    if dead is not None:
        codes = np.where(np.asarray(dead, dtype=bool)[:, :, None, None], np.uint16(levels), codes)
    return np.take(table, codes.transpose(0, 2, 3, 1), axis=0)


def anchor_rows(size: int, stride: int) -> np.ndarray:
    """Anchor coordinates along one axis: every ``stride``-th site, starting at the centre of the first window."""
    return np.arange(min(stride // 2, size - 1), size, stride)


def default_stride(h: int, w: int, most: int = 3, least_anchors: int = 49) -> int:
    """The coarsest anchor stride (at most ``most``) that still leaves ``least_anchors`` anchors per map.

    At stride 3 the 3x3 windows of the anchors tile the map: every site of Y is counted once, and X is
    read at one site in nine. 28x28 maps get stride 3 (81 anchors), 14x14 stride 2 (49), 7x7 stride 1.
    """
    for stride in range(most, 1, -1):
        if len(anchor_rows(h, stride)) * len(anchor_rows(w, stride)) >= least_anchors:
            return stride
    return 1


def _window_sums(hot: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Sum of ``hot`` (N, H, W, ...) over the 3x3 window of every anchor (rows x cols, each an evenly
    spaced run from :func:`anchor_rows`), borders counting nothing: nine strided views, no gather."""
    n, h, w = hot.shape[:3]
    padded = np.zeros((n, h + 2, w + 2) + hot.shape[3:], dtype=hot.dtype)
    padded[:, 1:-1, 1:-1] = hot
    step_y = int(rows[1] - rows[0]) if len(rows) > 1 else 1
    step_x = int(cols[1] - cols[0]) if len(cols) > 1 else 1
    out = np.zeros((n, len(rows), len(cols)) + hot.shape[3:], dtype=hot.dtype)
    for dy in range(3):
        ys = slice(int(rows[0]) + dy, int(rows[-1]) + dy + 1, step_y)
        for dx in range(3):
            out += padded[:, ys, int(cols[0]) + dx : int(cols[-1]) + dx + 1 : step_x]
    return out


def _gram(a: np.ndarray, b: np.ndarray, torch_mm: bool) -> np.ndarray:
    """a.T @ b as int64; exact because the caller keeps every entry below the dtype's exact range."""
    if torch_mm:
        import torch

        product = torch.matmul(torch.from_numpy(a).T, torch.from_numpy(b)).numpy()
    else:
        product = a.T @ b
    return np.rint(product).astype(np.int64)


def _dead_mask(dead: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    if dead is None:
        return None
    dead = np.asarray(dead, dtype=bool)
    if dead.shape != shape:
        raise ValueError(f"dead must have shape {shape}, got {dead.shape}")
    return dead


def _pair_counts(
    codes_x, codes_y, levels, dead_x, dead_y, window: bool, backend: str, max_elements: int, stride: int = 1
):
    levels = check_levels(levels)
    codes_x, codes_y = check_codes(codes_x, levels), check_codes(codes_y, levels)
    n, cx, h, w = codes_x.shape
    if codes_y.shape[0] != n or codes_y.shape[2:] != (h, w):
        raise ValueError(
            f"X and Y must hold the same images at the same H x W (use match_resolution first), "
            f"got shapes {codes_x.shape} and {codes_y.shape}"
        )
    cy = codes_y.shape[1]
    if stride < 1:
        raise ValueError(f"stride must be a positive number of sites, got {stride}")
    dead_x, dead_y = _dead_mask(dead_x, (n, cx)), _dead_mask(dead_y, (n, cy))
    torch_mm = _use_torch(backend)
    rows_at, cols_at = anchor_rows(h, stride), anchor_rows(w, stride)
    anchors = len(rows_at) * len(cols_at)
    per_row = 9 if window else 1
    dtype = np.float32 if anchors * per_row < EXACT_F32 else np.float64
    row_limit = EXACT_F32 // per_row if dtype == np.float32 else 2**52
    row_limit = min(row_limit, max(1, max_elements // ((cx + cy) * levels)))
    step = max(1, row_limit // (h * w))
    total = np.zeros((cx * levels, cy * levels), dtype=np.int64)
    for start in range(0, n, step):
        part = slice(start, min(n, start + step))
        at_anchors = codes_x[part][:, :, rows_at][:, :, :, cols_at]
        hot_x = _one_hot(at_anchors, levels, None if dead_x is None else dead_x[part], dtype)
        part_dead_y = None if dead_y is None else dead_y[part]
        if window:
            hot_y = _window_sums(_one_hot(codes_y[part], levels, part_dead_y, dtype), rows_at, cols_at)
        else:
            hot_y = _one_hot(codes_y[part][:, :, rows_at][:, :, :, cols_at], levels, part_dead_y, dtype)
        rows = hot_x.shape[0] * anchors
        total += _gram(hot_x.reshape(rows, cx * levels), hot_y.reshape(rows, cy * levels), torch_mm)
    return total.reshape(cx, levels, cy, levels).transpose(0, 2, 1, 3).copy()


def cross_aura_counts(
    codes_x: np.ndarray,
    codes_y: np.ndarray,
    levels: int,
    dead_x: np.ndarray | None = None,
    dead_y: np.ndarray | None = None,
    *,
    backend: str = "auto",
    max_elements: int = 2**24,
    stride: int = 1,
) -> np.ndarray:
    """Cross-aura counts int64 (Cx, Cy, G, G) of X codes (N, Cx, H, W) against Y codes (N, Cy, H, W).

    ``dead_x`` (N, Cx) and ``dead_y`` (N, Cy) drop dead maps. ``max_elements`` bounds each one-hot
    block (rows x (Cx + Cy) x G; peak memory about 3 x 4 bytes x max_elements) so memory does not grow
    with N; ``backend`` is "auto", "torch" or "numpy" and never changes the result. ``stride`` > 1
    counts only the sites s on a grid of that step (see :func:`default_stride`): the same estimator on
    a regular sample of s, about stride**2 times cheaper; 1 counts every site.
    """
    return _pair_counts(codes_x, codes_y, levels, dead_x, dead_y, True, backend, max_elements, stride)


def histogram_joint_counts(
    codes_x: np.ndarray,
    codes_y: np.ndarray,
    levels: int,
    dead_x: np.ndarray | None = None,
    dead_y: np.ndarray | None = None,
    *,
    backend: str = "auto",
    max_elements: int = 2**24,
    stride: int = 1,
) -> np.ndarray:
    """Plain per-pixel joint histogram (Cx, Cy, G, G): X_i(s) = g and Y_j(s) = h at the same site only.

    The `hist-mi` baseline: the same codes as the aura MI, without its spatial window (``stride`` as
    in :func:`cross_aura_counts`).
    """
    return _pair_counts(codes_x, codes_y, levels, dead_x, dead_y, False, backend, max_elements, stride)


def mutual_information(counts: np.ndarray) -> np.ndarray:
    """MI in bits of joint counts (..., A, B): sum q log2(q / (q_row q_col)), 0 where counts are all zero.

    Computed as H(row) + H(col) - H(joint), which equals the defining sum (the log of a product
    splits), and clipped at 0 against rounding.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim < 2:
        raise ValueError(f"expected joint counts of shape (..., A, B), got shape {counts.shape}")
    h_row = entropy_bits(counts.sum(axis=-1), (-1,))
    h_col = entropy_bits(counts.sum(axis=-2), (-1,))
    h_joint = entropy_bits(counts, (-2, -1))
    return np.maximum(h_row + h_col - h_joint, 0.0)


def aura_mi_importance(cross_counts: np.ndarray) -> np.ndarray:
    """Importance (Cx,) of each channel of X: the sum over Y's channels j of MI(X_i; Y_j)."""
    cross_counts = np.asarray(cross_counts)
    if cross_counts.ndim != 4:
        raise ValueError(f"expected cross counts of shape (Cx, Cy, G, G), got shape {cross_counts.shape}")
    return mutual_information(cross_counts).sum(axis=1)


def entropy_bin_codes(entropy: np.ndarray, levels: int, bins: int, dead: np.ndarray | None = None) -> np.ndarray:
    """Per-image aura entropies (N, C) -> int64 bin codes in [0, bins) over the fixed range [0, log2(G*G)].

    Fixed bins need no first pass to find the range, so label counts can stream. Dead maps get -1,
    which :func:`label_joint_counts` skips.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    top = 2.0 * np.log2(check_levels(levels))
    codes = np.floor(np.asarray(entropy, dtype=np.float64) / top * bins)
    codes = np.clip(codes, 0, bins - 1).astype(np.int64)
    if dead is not None:
        codes[np.asarray(dead, dtype=bool)] = -1
    return codes


def label_joint_counts(stat_codes: np.ndarray, labels: np.ndarray, n_classes: int, bins: int) -> np.ndarray:
    """Joint counts int64 (C, bins, K) of each channel's per-image statistic code and the image's label.

    ``stat_codes`` (N, C) in [0, bins), negative to skip a map (dead); ``labels`` (N,) in [0, K).
    """
    stat_codes = np.asarray(stat_codes, dtype=np.int64)
    labels = np.asarray(labels).astype(np.int64, copy=False)
    if stat_codes.ndim != 2 or labels.shape != stat_codes.shape[:1]:
        raise ValueError(f"expected codes (N, C) and labels (N,), got {stat_codes.shape} and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got [{labels.min()}, {labels.max()}]")
    if stat_codes.size and stat_codes.max() >= bins:
        raise ValueError(f"statistic codes must lie below bins={bins}, got {stat_codes.max()}")
    c = stat_codes.shape[1]
    keep = stat_codes >= 0
    channel = np.broadcast_to(np.arange(c), stat_codes.shape)
    label = np.broadcast_to(labels[:, None], stat_codes.shape)
    index = (channel[keep] * bins + stat_codes[keep]) * n_classes + label[keep]
    return np.bincount(index, minlength=c * bins * n_classes).reshape(c, bins, n_classes)


def label_mi(counts: np.ndarray) -> np.ndarray:
    """MI in bits (C,) between each channel's binned statistic and the label, from (C, bins, K) counts."""
    return mutual_information(counts)
