"""The superization curve's maths against brute-force loops, and the layers it is measured on."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx_graphsurgeon.logger import G_LOGGER

from builders import two_group_model
from edgeprune.analysis import analyze
from edgeprune.graph.model import ModelGraph
from edgeprune.semiotic import CurveAccumulator, SaliencyLayer, curve_distance, saliency_layers, saliency_maps
from edgeprune.semiotic.curve import map_entropy

G_LOGGER.severity = G_LOGGER.ERROR


def brute_entropy(image: np.ndarray, levels: int) -> tuple[float, bool]:
    """Section 1 in loops: min-max quantisation, 8-neighbour aura matrix without padding, entropy in bits."""
    h, w = image.shape
    lo, hi = float(image.min()), float(image.max())
    if hi - lo <= 0:
        return 0.0, True
    codes = np.zeros((h, w), dtype=int)
    for y in range(h):
        for x in range(w):
            codes[y, x] = min(int(math.floor((float(image[y, x]) - lo) / (hi - lo) * levels)), levels - 1)
    aura = np.zeros((levels, levels))
    for y in range(h):
        for x in range(w):
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    if (dy or dx) and 0 <= y + dy < h and 0 <= x + dx < w:
                        aura[codes[y, x], codes[y + dy, x + dx]] += 1
    p = aura / aura.sum()
    return float(-sum(v * math.log2(v) for v in p.ravel() if v > 0)), False


def brute_saliency(acts: np.ndarray, kept=None, weights=None) -> np.ndarray:
    n, c, h, w = acts.shape
    channels = [i for i in range(c) if kept is None or kept[i]]
    out = np.zeros((n, 1, h, w))
    for i in range(n):
        total = sum(weights[k] for k in channels) if weights is not None else len(channels)
        for k in channels:
            out[i, 0] += acts[i, k] * (weights[k] if weights is not None else 1.0) / total
    return out


@pytest.mark.parametrize("seed", range(4))
def test_saliency_maps_match_the_loops(seed):
    rng = np.random.default_rng(seed)
    acts = rng.standard_normal((3, 5, 4, 6)).astype(np.float32)
    kept = rng.random(5) < 0.6
    kept[seed % 5] = True
    weights = rng.random(5)
    np.testing.assert_allclose(saliency_maps(acts), brute_saliency(acts), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(saliency_maps(acts, kept), brute_saliency(acts, kept), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(saliency_maps(acts, kept, weights), brute_saliency(acts, kept, weights), rtol=1e-6, atol=1e-7)


def test_zero_weights_fall_back_to_the_mean():
    acts = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    np.testing.assert_allclose(saliency_maps(acts, None, np.zeros(3)), brute_saliency(acts))


@pytest.mark.parametrize("shape,levels", [((5, 5), 8), ((3, 7), 4), ((2, 2), 2), ((6, 4), 8)])
def test_map_entropy_matches_the_loops(shape, levels):
    rng = np.random.default_rng(sum(shape))
    maps = rng.standard_normal((4, 1, *shape))
    maps[2] = 1.5  # a dead map
    entropy, dead = map_entropy(maps, levels)
    for i in range(4):
        expected, expected_dead = brute_entropy(maps[i, 0], levels)
        assert dead[i] == expected_dead
        assert entropy[i] == pytest.approx(expected, abs=1e-12)


def test_accumulator_streams_to_the_mean_over_images_and_counts_dead_maps():
    rng = np.random.default_rng(5)
    layers = [SaliencyLayer("a", "ta", ("g",), 3), SaliencyLayer("b", "tb", ("g",), 2)]
    ta, tb = rng.standard_normal((6, 3, 6, 6)), rng.standard_normal((6, 2, 5, 5))
    tb[1] = 0.0  # every channel constant: a dead saliency map
    kept = {"ta": np.array([True, False, True]), "tb": None}
    accumulator = CurveAccumulator(layers)
    for batch in (slice(0, 4), slice(4, 6)):
        accumulator.update({"ta": ta[batch], "tb": tb[batch]}, kept)
    curve = accumulator.curve()
    expected_a = np.mean([brute_entropy(m[0], 8)[0] for m in brute_saliency(ta, kept["ta"])])
    expected_b = np.mean([brute_entropy(m[0], 8)[0] for m in brute_saliency(tb)])
    assert curve.images == 6
    np.testing.assert_allclose(curve.entropies, [expected_a, expected_b], rtol=1e-12)
    np.testing.assert_allclose(curve.deltas, [expected_b - expected_a], rtol=1e-12)
    assert [layer.dead_fraction for layer in curve.layers] == [0.0, pytest.approx(1 / 6)]
    assert (curve.layers[0].height, curve.layers[0].width, curve.layers[0].levels) == (6, 6, 8)
    data = curve.to_dict()
    assert data["layers"][0]["delta"] is None and data["layers"][1]["delta"] == pytest.approx(expected_b - expected_a)
    assert data["superization"] == pytest.approx([expected_b - expected_a])


def test_curve_distance_is_the_mean_absolute_change_of_the_anchored_curve():
    a, b = np.array([3.0, 2.0, 2.5, 1.0]), np.array([3.5, 2.0, 2.0, 1.0])
    # anchored: (H0, dH1, dH2, dH3) = (3, -1, .5, -1.5) and (3.5, -1.5, 0, -1)
    assert curve_distance(a, b) == pytest.approx((0.5 + 0.5 + 0.5 + 0.5) / 4)
    assert curve_distance(a, a) == 0.0
    assert curve_distance(a + 1.0, a) == pytest.approx(0.25)  # a shift counts once, at the first layer
    assert curve_distance(a, b, "levels") == pytest.approx((0.5 + 0 + 0.5 + 0) / 4)
    assert curve_distance(a + 1.0, a, "levels") == pytest.approx(1.0)
    with pytest.raises(ValueError):
        curve_distance(a, b[:3])


def test_layers_are_the_prunable_groups_maps_in_topological_order():
    model = ModelGraph.from_proto(two_group_model())
    layers = saliency_layers(model, analyze(model))
    assert [(layer.tensor, layer.groups, layer.channels) for layer in layers] == [
        ("ra", ("conv_a",), 8), ("rb", ("conv_b",), 6)]


def test_pooling_to_a_common_resolution_averages_blocks_and_keeps_smaller_maps():
    from edgeprune.semiotic.curve import pooled

    maps = np.arange(2 * 36, dtype=np.float64).reshape(2, 1, 6, 6)
    out = pooled(maps, 3)
    for i in range(2):
        for y in range(3):
            for x in range(3):
                assert out[i, 0, y, x] == pytest.approx(maps[i, 0, 2 * y:2 * y + 2, 2 * x:2 * x + 2].mean())
    assert pooled(maps, 8).shape == (2, 1, 6, 6)
    layers = [SaliencyLayer("a", "ta", ("g",), 1)]
    accumulator = CurveAccumulator(layers, resolution=3)
    accumulator.update({"ta": maps})
    assert (accumulator.curve().layers[0].height, accumulator.curve().layers[0].levels) == (3, 4)


def test_a_channels_last_map_gives_the_curve_of_its_channels_first_transpose():
    """A layer whose channels are on the last axis (N,H,W,C) is measured as the same maps laid out N,C,H,W."""
    rng = np.random.default_rng(9)
    acts = rng.standard_normal((5, 4, 6, 7))  # N,H,W,C
    kept, weights = np.array([True, False, True, True, False, True, True]), rng.random(7)
    first = acts.transpose(0, 3, 1, 2)
    for k, w in ((None, None), (kept, None), (kept, weights)):
        np.testing.assert_allclose(saliency_maps(acts, k, w, channel_axis=3), brute_saliency(first, k, w), rtol=1e-12)
    accumulator = CurveAccumulator([SaliencyLayer("a", "ta", ("g",), 7, channel_axis=3)])
    accumulator.update({"ta": acts}, {"ta": kept})
    expected = np.mean([brute_entropy(m[0], 8)[0] for m in brute_saliency(first, kept)])
    np.testing.assert_allclose(accumulator.curve().entropies, [expected], rtol=1e-12)
    assert (accumulator.curve().layers[0].height, accumulator.curve().layers[0].width) == (4, 6)
    with pytest.raises(ValueError, match="axis 1 or 3"):
        saliency_maps(acts, channel_axis=2)
