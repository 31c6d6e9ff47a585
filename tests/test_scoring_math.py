"""The vectorised scoring maths against brute-force pure-Python loops on small random inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeprune.scoring import (
    LayerAccumulator,
    aura_counts,
    aura_entropy,
    aura_mi_importance,
    cross_aura_counts,
    default_levels,
    default_stride,
    entropy_bin_codes,
    histogram_joint_counts,
    label_joint_counts,
    label_mi,
    match_resolution,
    mutual_information,
    neighbour_pair_count,
    quantize_maps,
)

SHAPES, G = [(2, 3, 5, 5), (2, 3, 4, 6), (3, 2, 1, 1), (2, 3, 2, 2), (2, 2, 1, 5)], 4


def random_maps(shape, seed, dead=((0, 1),)):
    """Random maps with ties (values on a coarse grid) and some constant (dead) maps."""
    maps = np.random.default_rng(seed).integers(-3, 4, shape).astype(np.float32) * 0.5
    for n, c in dead:
        if n < shape[0] and c < shape[1]:
            maps[n, c] = 1.25
    return maps


def ref_quantize(maps, levels):
    n, c, h, w = maps.shape
    codes = np.zeros(maps.shape, dtype=np.int64)
    dead = np.zeros((n, c), dtype=bool)
    for i, j in np.ndindex(n, c):
        vals = [float(v) for v in maps[i, j].ravel()]
        lo, hi = min(vals), max(vals)
        dead[i, j] = hi == lo
        if not dead[i, j]:
            row = [min(math.floor((v - lo) / (hi - lo) * levels), levels - 1) for v in vals]
            codes[i, j] = np.reshape(row, (h, w))
    return codes, dead


def window(y, x, h, w, radius):
    """The sites (yy, xx) of the (2 radius + 1)^2 window around (y, x) that lie in an h x w map."""
    return [(yy, xx) for yy in range(max(0, y - radius), min(h, y + radius + 1))
            for xx in range(max(0, x - radius), min(w, x + radius + 1))]


def ref_aura(codes, dead, levels):
    n, c, h, w = codes.shape
    out = np.zeros((n, c, levels, levels), dtype=np.int64)
    for i, j, y, x in np.ndindex(n, c, h, w):
        for yy, xx in window(y, x, h, w, 1):
            if (yy, xx) != (y, x) and not dead[i, j]:
                out[i, j, codes[i, j, y, x], codes[i, j, yy, xx]] += 1
    return out


def ref_pairs(cx, dx, cy, dy, levels, radius, stride=1):
    """Brute force; with ``stride``, only the sites s whose row and column are anchors (stride // 2 + k stride,
    or 0 when the map is narrower than that) count."""
    n, nx, h, w = cx.shape
    ny = cy.shape[1]
    out = np.zeros((nx, ny, levels, levels), dtype=np.int64)
    first = lambda size: min(stride // 2, size - 1)  # noqa: E731
    for k, i, j, y, x in np.ndindex(n, nx, ny, h, w):
        anchor = (y - first(h)) % stride == 0 and y >= first(h) and (x - first(w)) % stride == 0 and x >= first(w)
        if anchor and not (dx[k, i] or dy[k, j]):
            for yy, xx in window(y, x, h, w, radius):
                out[i, j, cx[k, i, y, x], cy[k, j, yy, xx]] += 1
    return out


def ref_entropy(counts):
    total = sum(counts)
    return -sum(v / total * math.log2(v / total) for v in counts if v) if total else 0.0


def ref_mi(matrix):
    total = float(np.sum(matrix))
    if total == 0:
        return 0.0
    rows, cols = matrix.sum(axis=1) / total, matrix.sum(axis=0) / total
    mi = 0.0
    for a in range(matrix.shape[0]):
        for b in range(matrix.shape[1]):
            q = matrix[a, b] / total
            if q > 0:
                mi += q * math.log2(q / (rows[a] * cols[b]))
    return mi


@pytest.mark.parametrize("shape", SHAPES)
def test_quantize_matches_loop(shape):
    maps = random_maps(shape, 1, dead=((0, 1), (1, 0)))
    codes, dead = quantize_maps(maps, G)
    ref_codes, ref_dead = ref_quantize(maps, G)
    assert codes.dtype == np.uint8
    np.testing.assert_array_equal(dead, ref_dead)
    np.testing.assert_array_equal(codes, ref_codes)
    alive = ~dead
    flat = codes.reshape(shape[0], shape[1], -1)
    assert (flat.max(axis=2)[alive] == G - 1).all() and (flat.min(axis=2)[alive] == 0).all()
    assert (flat[dead] == 0).all()
    if shape[2] * shape[3] == 1:
        assert dead.all()  # a 1x1 map is always constant


def test_quantize_ties_at_max_nan_and_min_range():
    maps = np.array([0.0, 1.0, 2.0, 4.0, 4.0, 3.999]).reshape(1, 1, 2, 3)
    codes, dead = quantize_maps(maps, 4)
    assert codes.ravel().tolist() == [0, 1, 2, 3, 3, 3] and not dead.any()
    bad = np.stack([maps, maps * 1e-9, np.where(maps > 3, np.nan, maps)], axis=1)[:, :, 0]
    _, dead = quantize_maps(bad, 4, min_range=1e-6)
    assert dead.tolist() == [[False, True, True]]


def test_default_levels():
    assert [default_levels(h, w) for h, w in [(28, 28), (5, 5), (4, 4), (3, 3), (4, 6), (2, 2), (1, 1)]] == [
        8, 8, 4, 4, 8, 2, 2]


def test_match_resolution_pools_and_crops():
    rng = np.random.default_rng(2)
    x, y = rng.random((2, 3, 8, 6)), rng.random((2, 4, 4, 3))
    px, py = match_resolution(x, y)
    assert py is y or np.array_equal(py, y)
    np.testing.assert_allclose(px, x.reshape(2, 3, 4, 2, 3, 2).mean(axis=(3, 5)))
    x7, y4 = rng.random((1, 1, 7, 7)), rng.random((1, 2, 4, 4))
    cx, _ = match_resolution(x7, y4)
    np.testing.assert_array_equal(cx, x7[:, :, 1:5, 1:5])
    x15, y7 = rng.random((1, 1, 15, 14)), rng.random((1, 1, 7, 7))
    cx, _ = match_resolution(x15, y7)
    np.testing.assert_allclose(cx, x15[:, :, 0:14].reshape(1, 1, 7, 2, 7, 2).mean(axis=(3, 5)))


@pytest.mark.parametrize("shape", SHAPES)
def test_aura_counts_match_loop(shape):
    codes, dead = quantize_maps(random_maps(shape, 3), G)
    counts = aura_counts(codes, G, dead)
    np.testing.assert_array_equal(counts, ref_aura(codes, dead, G))
    np.testing.assert_array_equal(counts, counts.swapaxes(-1, -2))
    h, w = shape[2:]
    in_bounds = sum(len(window(y, x, h, w, 1)) - 1 for y in range(h) for x in range(w))
    assert neighbour_pair_count(h, w) == in_bounds
    np.testing.assert_array_equal(counts.sum(axis=(2, 3)), np.where(dead, 0, in_bounds))
    expected = [[ref_entropy(counts[i, j].ravel().tolist()) for j in range(shape[1])] for i in range(shape[0])]
    np.testing.assert_allclose(aura_entropy(counts), expected, atol=1e-12)


def test_aura_entropy_extremes():
    assert aura_entropy(np.ones((G, G))) == pytest.approx(math.log2(G * G))
    single = np.zeros((G, G))
    single[2, 2] = 7
    assert aura_entropy(single) == 0.0
    assert aura_entropy(np.zeros((3, G, G))).tolist() == [0.0, 0.0, 0.0]


def test_smooth_blob_has_lower_entropy_than_noise():
    yy, xx = np.mgrid[0:28, 0:28]
    blob = np.exp(-((yy - 13.5) ** 2 + (xx - 10) ** 2) / 60.0)
    gradient = (yy + 0.5 * xx).astype(float)
    noise = np.random.default_rng(4).random((28, 28))
    codes, dead = quantize_maps(np.stack([blob, gradient, noise])[None], 8)
    h_blob, h_grad, h_noise = aura_entropy(aura_counts(codes, 8, dead))[0]
    assert h_blob < h_noise - 1.5 and h_grad < h_noise - 1.5
    assert h_noise > 0.9 * math.log2(64)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_cross_and_histogram_counts_match_loop(shape, backend):
    if backend == "torch":
        pytest.importorskip("torch")
    cx, dx = quantize_maps(random_maps(shape, 5), G)
    cy, dy = quantize_maps(random_maps((shape[0], 2) + shape[2:], 6, dead=((1, 1),)), G)
    cross = cross_aura_counts(cx, cy, G, dx, dy, backend=backend, max_elements=64)  # forces chunks
    assert cross.dtype == np.int64 and cross.shape == (shape[1], 2, G, G)
    np.testing.assert_array_equal(cross, ref_pairs(cx, dx, cy, dy, G, radius=1))
    hist = histogram_joint_counts(cx, cy, G, dx, dy, backend=backend)
    np.testing.assert_array_equal(hist, ref_pairs(cx, dx, cy, dy, G, radius=0))
    mi = mutual_information(cross)
    np.testing.assert_allclose(mi, [[ref_mi(cross[i, j]) for j in range(2)] for i in range(shape[1])], atol=1e-12)
    np.testing.assert_allclose(aura_mi_importance(cross), mi.sum(axis=1))


@pytest.mark.parametrize("stride", [2, 3, 4])
@pytest.mark.parametrize("shape", [(2, 3, 7, 8), (2, 2, 3, 5), (1, 2, 1, 4)])
def test_strided_counts_match_loop_on_anchor_sites(shape, stride):
    cx, dx = quantize_maps(random_maps(shape, 11), G)
    cy, dy = quantize_maps(random_maps((shape[0], 2) + shape[2:], 12, dead=((0, 1),)), G)
    cross = cross_aura_counts(cx, cy, G, dx, dy, stride=stride, max_elements=64)
    np.testing.assert_array_equal(cross, ref_pairs(cx, dx, cy, dy, G, radius=1, stride=stride))
    hist = histogram_joint_counts(cx, cy, G, dx, dy, stride=stride)
    np.testing.assert_array_equal(hist, ref_pairs(cx, dx, cy, dy, G, radius=0, stride=stride))


def test_default_stride_keeps_enough_anchors():
    assert (default_stride(28, 28), default_stride(14, 14), default_stride(7, 7), default_stride(1, 1)) == (3, 2, 1, 1)
    assert default_stride(224, 224) == 3
    with pytest.raises(ValueError, match="stride"):
        cross_aura_counts(np.zeros((1, 1, 3, 3), np.uint8), np.zeros((1, 1, 3, 3), np.uint8), G, stride=0)


def test_mutual_information_limits():
    p, q = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.5, 0.25, 0.25])
    assert mutual_information(np.outer(p, q) * 1000) == pytest.approx(0.0, abs=1e-12)
    hist = np.array([3.0, 0.0, 5.0, 8.0])
    assert mutual_information(np.diag(hist)) == pytest.approx(ref_entropy(hist.tolist()))
    assert mutual_information(np.zeros((2, 4, 4))).tolist() == [0.0, 0.0]
    codes, dead = quantize_maps(random_maps((3, 2, 6, 6), 7, dead=()), G)
    same = histogram_joint_counts(codes, codes, G, dead, dead)
    marginal = np.stack([np.bincount(codes[:, c].ravel(), minlength=G) for c in range(2)])
    np.testing.assert_allclose(np.diagonal(mutual_information(same)), [ref_entropy(m.tolist()) for m in marginal])
    rng = np.random.default_rng(8)
    a, b = rng.integers(0, G, (2, 1, 1, 200, 200)).astype(np.uint8)
    assert mutual_information(cross_aura_counts(a, b, G))[0, 0] < 0.01


def test_label_mi_matches_loop_and_determined_label():
    rng = np.random.default_rng(9)
    stat = rng.integers(-1, 5, (40, 3))
    labels = rng.integers(0, 3, 40)
    counts = label_joint_counts(stat, labels, 3, 5)
    ref = np.zeros((3, 5, 3), dtype=np.int64)
    for k in range(40):
        for c in range(3):
            if stat[k, c] >= 0:
                ref[c, stat[k, c], labels[k]] += 1
    np.testing.assert_array_equal(counts, ref)
    determined = np.stack([labels * 2, labels, rng.integers(0, 5, 40)], axis=1)  # channel 2 is random
    mi = label_mi(label_joint_counts(determined, labels, 3, 6))
    h_label = ref_entropy(np.bincount(labels).tolist())
    assert mi[0] == pytest.approx(h_label) and mi[1] == pytest.approx(h_label) and mi[2] < h_label
    dead = np.array([[False, False, False, True]])
    codes = entropy_bin_codes(np.array([[0.0, 6.0, 3.0, 5.99]]), 8, 4, dead=dead)
    assert codes.tolist() == [[0, 3, 2, -1]]


def make_accumulator():
    return LayerAccumulator(3, G, next_channels=2, n_classes=3, label_bins=6, keep_image_entropy=True)


def batch_data(n=9):
    rng = np.random.default_rng(10)
    x = np.maximum(rng.standard_normal((n, 3, 6, 6)), 0)
    x[:, 2] = 0.0  # channel 2 is dead on every image
    x[1, 0] = 0.0
    y = rng.standard_normal((n, 2, 3, 3))
    return x, y, rng.integers(0, 3, n)


def results(acc):
    names = ("aura_entropy mean_image_entropy dead_fraction mean_activation mean_abs_activation "
             "mean_square_activation aura_mi hist_mi label_mi image_entropy").split()
    return {name: getattr(acc, name)() for name in names}


def test_streaming_batches_and_merge_equal_one_pass():
    x, y, labels = batch_data()
    whole = make_accumulator()
    whole.update(x, y, labels)
    parts = make_accumulator()
    for part in (slice(0, 2), slice(2, 7), slice(7, 9)):
        parts.update(x[part], y[part], labels[part])
    left, right = make_accumulator(), make_accumulator()
    left.update(x[:4], y[:4], labels[:4])
    right.update(x[4:], y[4:], labels[4:])
    left.merge(right)
    expected = results(whole)
    for other in (parts, left):
        for name in ("aura", "dead", "cross", "hist", "label"):
            np.testing.assert_array_equal(getattr(other, name), getattr(whole, name))
        for name, value in results(other).items():
            np.testing.assert_allclose(value, expected[name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_accumulator_matches_functions_and_dead_channels_look_bad():
    x, y, labels = batch_data()
    acc = make_accumulator()
    acc.update(x, y, labels)
    codes, dead = quantize_maps(x, G)
    per_image = ref_aura(codes, dead, G)
    np.testing.assert_array_equal(acc.aura, per_image.sum(axis=0))
    np.testing.assert_allclose(acc.image_entropy(), aura_entropy(per_image))
    px, py = match_resolution(x, y)
    (qx, dx), (qy, dy) = quantize_maps(px, G), quantize_maps(py, G)
    np.testing.assert_array_equal(acc.cross, ref_pairs(qx, dx, qy, dy, G, radius=1))
    np.testing.assert_allclose(acc.mean_activation(), x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(acc.dead_fraction(), [1 / 9, 0.0, 1.0])
    for name in ("aura_entropy", "mean_image_entropy", "aura_mi", "hist_mi", "label_mi"):
        scores = getattr(acc, name)()
        assert scores[2] == 0.0 and scores[0] > 0.0, name


def test_accumulator_errors_and_unmeasured():
    acc = LayerAccumulator(3, G)
    with pytest.raises(ValueError, match="no images accumulated"):
        acc.aura_entropy()
    with pytest.raises(ValueError, match="next_channels"):
        acc.update(np.zeros((1, 3, 4, 4)), y=np.zeros((1, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"expected x of shape \(N, 3, H, W\)"):
        acc.update(np.zeros((1, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 4\), got \[0, 4\]"):
        aura_counts(np.arange(4, dtype=np.uint8).reshape(1, 1, 2, 2) + np.uint8([[0, 1]]), 4)
    with pytest.raises(ValueError, match="cannot merge"):
        acc.merge(LayerAccumulator(3, 8))
    acc.update(np.random.default_rng(0).random((2, 3, 4, 4)))
    assert acc.aura_mi() is None and acc.hist_mi() is None and acc.label_mi() is None
    with pytest.raises(ValueError, match="keep_image_entropy=True"):
        acc.image_entropy()


def test_pair_statistics_can_be_skipped_without_changing_the_others():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((3, 4, 6, 6)), rng.standard_normal((3, 5, 6, 6))
    full = LayerAccumulator(4, 4, next_channels=5)
    cross_only = LayerAccumulator(4, 4, next_channels=5, histogram=False)
    hist_only = LayerAccumulator(4, 4, next_channels=5, cross=False)
    for acc in (full, cross_only, hist_only):
        acc.update(x, y)
    assert cross_only.hist_mi() is None and hist_only.aura_mi() is None
    np.testing.assert_array_equal(cross_only.aura_mi(), full.aura_mi())
    np.testing.assert_array_equal(hist_only.hist_mi(), full.hist_mi())
    np.testing.assert_array_equal(cross_only.aura_entropy(), full.aura_entropy())


def test_aura_matrices_can_be_skipped_unless_label_mi_needs_them():
    rng = np.random.default_rng(6)
    x, y = np.maximum(rng.standard_normal((3, 4, 6, 6)), 0), rng.standard_normal((3, 5, 6, 6))
    x[1, 2] = 0.0
    full = LayerAccumulator(4, 4, next_channels=5)
    lean = LayerAccumulator(4, 4, next_channels=5, entropy=False)
    for acc in (full, lean):
        acc.update(x, y)
    assert lean.aura is None and lean.aura_entropy() is None and lean.mean_image_entropy() is None
    np.testing.assert_array_equal(lean.aura_mi(), full.aura_mi())
    np.testing.assert_array_equal(lean.dead_fraction(), full.dead_fraction())
    with_labels = LayerAccumulator(4, 4, n_classes=3, entropy=False)
    with_labels.update(x, labels=np.array([0, 1, 2]))
    np.testing.assert_array_equal(with_labels.aura, full.aura)
