"""The refit-error criterion: consumer statistics streamed over calibration data, and the greedy removal
checked against refitting every candidate from scratch."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from corpus import export_corpus_model
from edgeprune.analysis import analyze
from edgeprune.calibration import load_calibration
from edgeprune.capture.grams import capture_grams, linear_consumers
from edgeprune.errors import InputError
from edgeprune.graph import load_model, normalize_proto
from edgeprune.scoring.removal import removal_scores


@pytest.fixture(scope="module")
def resnet(corpus_dir):
    model = load_model(export_corpus_model("resnet20", "legacy", corpus_dir))
    return model, analyze(model)


def _calibration(tmp_path, model, shape, count=40, seed=0, values=None):
    data = np.random.default_rng(seed).standard_normal((count,) + shape).astype(np.float32) if values is None else values
    path = tmp_path / f"calib-{seed}.npz"
    np.savez(path, **{model.input_names[0]: data})
    return load_calibration(path, model)


def _objective(xx, xy, y_square, columns, penalty):
    """min_W ||Y - X W||^2 + penalty ||W||^2 over the given columns, from centred Gram matrices."""
    if not len(columns):
        return y_square
    block = xx[np.ix_(columns, columns)] + penalty * np.eye(len(columns))
    return y_square - float(np.sum(xy[columns] * np.linalg.solve(block, xy[columns])))


def _brute_force_scores(grams, analysis, group, ridge):
    """Greedy removal where every candidate is refitted from scratch."""
    index = analysis.group_index(group.id)
    consumers = []
    for gram in grams.grams:
        mine = analysis.class_group[gram.consumer.columns] == index
        xx, xy, y_square = gram.centred()
        if mine.any() and y_square > 0:
            penalty = ridge * max(np.trace(xx) / len(xx), 1e-12)
            owner = np.where(mine, analysis.class_index[gram.consumer.columns], -1)
            consumers.append((xx, xy, y_square, owner, penalty))

    def error(removed):
        return sum(_objective(xx, xy, yy, np.flatnonzero(~np.isin(owner, list(removed)) | (owner < 0)), p) / yy
                   for xx, xy, yy, owner, p in consumers)

    removed, scores, base = [], np.zeros(group.channels), error([])
    while len(removed) < group.channels:
        costs = {c: error(removed + [c]) for c in range(group.channels) if c not in removed}
        best = min(costs, key=lambda c: (costs[c], c))
        scores[best] = costs[best] - base
        removed.append(best)
    return scores


def test_greedy_removal_matches_refitting_every_candidate(resnet, tmp_path):
    model, analysis = resnet
    grams = capture_grams(model, analysis, _calibration(tmp_path, model, (1, 28, 28)), samples_per_image=8,
                          provider="cpu")
    checked = 0
    for group in analysis.prunable_groups:
        if group.channels > 16:
            continue  # the brute force refits every candidate at every step
        fast = removal_scores(grams, analysis, group, ridge=1e-3)
        slow = _brute_force_scores(grams, analysis, group, 1e-3)
        np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-9)
        checked += 1
    assert checked >= 4  # the stem group (five consumers) and the three first-stage blocks


def test_each_group_of_a_grouped_conv_is_its_own_consumer(corpus_dir, tmp_path):
    model = load_model(export_corpus_model("resnext", "legacy", corpus_dir))
    analysis = analyze(model)
    consumers = linear_consumers(model, analysis)
    split = [c for c in consumers if c.inputs != slice(None)]
    assert split and all(c.weight.shape[1] == len(c.columns) for c in split)
    shape = tuple(model.shapes[model.input_names[0]][1:])
    grams = capture_grams(model, analysis, _calibration(tmp_path, model, shape), samples_per_image=8,
                          provider="cpu")
    grouped = [g for g in analysis.prunable_groups if g.multiple > 1]
    assert grouped
    for group in grouped:
        np.testing.assert_allclose(removal_scores(grams, analysis, group, ridge=1e-3),
                                   _brute_force_scores(grams, analysis, group, 1e-3), rtol=1e-6, atol=1e-9)


def test_statistics_match_the_rows_and_outputs_onnx_runtime_computes(resnet, tmp_path):
    """X^T Y and ||Y||^2 come from X^T X and the weights; check them against the real conv outputs."""
    from edgeprune.capture.rows import outputs_at, patches, sample_positions
    from edgeprune.capture.session import ActivationRunner

    model, analysis = resnet
    data = _calibration(tmp_path, model, (1, 28, 28), count=12)
    grams = capture_grams(model, analysis, data, samples_per_image=5, provider="cpu")
    conv = next(g for g in grams.grams if g.consumer.geometry is not None and g.consumer.geometry.strides == (2, 2))
    c = conv.consumer
    values = ActivationRunner(model, [c.input, c.output], "cpu").run(next(iter(data.batches(64))).inputs)
    at = sample_positions(np.arange(12), *values[c.output].shape[2:], 5, 0)
    x = patches(values[c.input], 0, at, c.geometry).astype(np.float64)
    y = outputs_at(values[c.output], 0, at).astype(np.float64)
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    xx, xy, y_square = conv.centred()
    scale = np.abs(x.T @ x).max()
    np.testing.assert_allclose(xx, x.T @ x, atol=1e-4 * scale)
    np.testing.assert_allclose(xy, x.T @ y, atol=1e-4 * np.abs(x.T @ y).max())
    assert y_square == pytest.approx(float(np.sum(y * y)), rel=1e-4)


def test_statistics_do_not_depend_on_the_batch_size(resnet, tmp_path):
    model, analysis = resnet
    data = _calibration(tmp_path, model, (1, 28, 28), count=23)
    small = capture_grams(model, analysis, data, batch_size=5, provider="cpu")
    large = capture_grams(model, analysis, data, batch_size=64, provider="cpu")
    assert len(small.grams) == len(linear_consumers(model, analysis)) >= 20
    assert any(g.consumer.geometry is None for g in small.grams)  # the classifier (Gemm) is one
    for a, b in zip(small.grams, large.grams):
        assert a.rows == b.rows == (23 if a.consumer.geometry is None else 23 * 16)
        for one, other in zip(a.centred(), b.centred()):  # each batch's product is summed in float32
            np.testing.assert_allclose(one, other, rtol=1e-4, atol=1e-3 * np.abs(one).max())


def _duplicate_channel_model(seed=0):
    """x -> Conv(3->8) -> Relu -> Conv(8->4): channel 5 of the first conv is exactly 3x channel 2."""
    rng = np.random.default_rng(seed)
    w1, b1 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    w1[5], b1[5] = 3 * w1[2], 3 * b1[2]
    w2, b2 = rng.standard_normal((4, 8, 3, 3)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1], name="first"),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2", "b2"], ["y"], pads=[1, 1, 1, 1], name="second")]
    graph = helper.make_graph(nodes, "dup", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, k) for k, v in (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2))])
    return normalize_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10))


def test_a_channel_the_others_can_stand_in_for_goes_first(tmp_path):
    model = _duplicate_channel_model()
    analysis = analyze(model)
    grams = capture_grams(model, analysis, _calibration(tmp_path, model, (3, 8, 8)), provider="cpu")
    (group,) = analysis.prunable_groups
    scores = removal_scores(grams, analysis, group, ridge=1e-6)
    assert int(np.argmin(scores)) in (2, 5)
    assert scores.min() < 1e-4 < np.sort(scores)[1]  # the copy costs nothing; every other channel does
    assert np.all(np.diff(np.sort(scores)) >= 0) and scores.max() <= 1.0 + 1e-9  # at most all the variance


def _matmul_head_model(seed=1):
    """x -> Conv(3->6) -> Relu -> GlobalAveragePool -> Flatten -> MatMul(6x4) + bias: a linear head without Gemm."""
    rng = np.random.default_rng(seed)
    tensors = {"w1": rng.standard_normal((6, 3, 3, 3)), "b1": rng.standard_normal(6), "w2": rng.standard_normal((6, 4)),
               "b2": rng.standard_normal(4)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "w2"], ["m"], name="head"),
             helper.make_node("Add", ["m", "b2"], ["y"], name="bias")]
    graph = helper.make_graph(nodes, "head", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in tensors.items()])
    return normalize_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10))


def test_a_matmul_head_is_a_consumer_too(tmp_path):
    model = _matmul_head_model()
    analysis = analyze(model)
    (head,) = [c for c in linear_consumers(model, analysis) if c.node == "head"]
    assert head.geometry is None and head.weight.shape == (4, 6)
    grams = capture_grams(model, analysis, _calibration(tmp_path, model, (3, 8, 8)), provider="cpu")
    (group,) = analysis.prunable_groups
    np.testing.assert_allclose(removal_scores(grams, analysis, group), _brute_force_scores(grams, analysis, group, 1e-3),
                               rtol=1e-6, atol=1e-9)


def test_non_finite_activations_are_refused(tmp_path):
    model = _duplicate_channel_model()
    values = np.ones((8, 3, 8, 8), dtype=np.float32)
    values[3] = 3e38  # finite inputs whose conv outputs overflow
    data = _calibration(tmp_path, model, (3, 8, 8), values=values)
    with pytest.raises(InputError, match="NaN or Inf"):
        capture_grams(model, analyze(model), data, provider="cpu")
