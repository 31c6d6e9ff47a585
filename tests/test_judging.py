"""Task-aware judging (`edgeprune.evaluate.compare`): each task's measures against brute-force references
computed on the full outputs, identity, task detection and overrides, and the bad-task messages."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from onnx import helper

from builders import init, make_model, run_model, tensor_info
from edgeprune.calibration import load_calibration
from edgeprune.errors import InputError
from edgeprune.evaluate import TASKS, Comparison, compare, compare_all
from edgeprune.graph.load import normalize_proto
from edgeprune.judging import detect_task, greedy_decode

SAMPLES = 37  # not a multiple of the batch sizes below, so a short last batch is judged too


def _conv(rng, c_out, c_in, k, noise, base_seed):
    """Weights of one conv; ``noise`` perturbs a fixed base, so a noisy model is a drifted copy of the clean one."""
    base = np.random.default_rng(base_seed).standard_normal((c_out, c_in, k, k)).astype(np.float32) * 0.5
    return (base + noise * rng.standard_normal(base.shape)).astype(np.float32)


def head_model(kind: str, noise: float = 0.0, seed: int = 1):
    """A conv followed by one task's head; the same weights up to ``noise`` for every seed.

    segment: N x 5 x 8 x 8 logits; detect-map: Sigmoid -> N x 1 x 8 x 8; logit-map: the same without the
    Sigmoid; sequence: N x 12 x 6 (input N x 3 x 1 x 12, conv over time, squeeze, transpose);
    regress: N x 1 (global pool of a 1-channel conv); classify: N x 10 (global pool, flatten, gemm).
    """
    rng = np.random.default_rng(seed)
    if kind == "sequence":
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[0, 1, 0, 1], kernel_shape=[1, 3]),
                 helper.make_node("Squeeze", ["c", "axis2"], ["s"]),
                 helper.make_node("Transpose", ["s"], ["y"], perm=[0, 2, 1])]
        w = np.random.default_rng(11).standard_normal((6, 3, 1, 3)).astype(np.float32)
        w = (w + noise * rng.standard_normal(w.shape)).astype(np.float32)
        inits = [init("w", w), init("axis2", np.array([2], dtype=np.int64))]
        return make_model(nodes, [tensor_info("x", ["N", 3, 1, 12])], [tensor_info("y", ["N", 12, 6])], inits)
    channels = {"segment": 5, "detect-map": 1, "logit-map": 1, "regress": 1, "classify": 8}[kind]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1])]
    inits = [init("w", _conv(rng, channels, 3, 3, noise, 10))]
    out_shape = ["N", channels, 8, 8]
    if kind == "detect-map":
        nodes[0].output[0] = "z"
        nodes.append(helper.make_node("Sigmoid", ["z"], ["c"]))
    if kind in ("regress", "classify"):
        nodes.append(helper.make_node("GlobalAveragePool", ["c"], ["p"]))
        nodes.append(helper.make_node("Flatten", ["p"], ["f" if kind == "classify" else "y"]))
        out_shape = ["N", 1]
    if kind == "classify":
        fc = np.random.default_rng(12).standard_normal((8, 10)).astype(np.float32)
        inits.append(init("fc", (fc + noise * rng.standard_normal(fc.shape)).astype(np.float32)))
        nodes.append(helper.make_node("Gemm", ["f", "fc"], ["y"]))
        out_shape = ["N", 10]
    if kind in ("segment", "detect-map", "logit-map"):
        nodes[-1].output[0] = "y"
    shape_in = ["N", 3, 8, 8]
    return make_model(nodes, [tensor_info("x", shape_in)], [tensor_info("y", out_shape)], inits)


@pytest.fixture(scope="module")
def data_for(tmp_path_factory):
    """Calibration data for a model kind (image-shaped or sequence-shaped inputs), labelled for classify."""
    folder = tmp_path_factory.mktemp("judging")

    def make(kind: str, model):
        rng = np.random.default_rng(3)
        shape = (SAMPLES, 3, 1, 12) if kind == "sequence" else (SAMPLES, 3, 8, 8)
        arrays = {"x": rng.standard_normal(shape).astype(np.float32)}
        if kind == "classify":
            arrays["labels"] = rng.integers(0, 10, SAMPLES)
        path = folder / f"{kind}.npz"
        if not path.exists():  # written once: earlier sets may still map the file
            np.savez(path, **arrays)
        return load_calibration(path, model), arrays

    return make


def judged(kind, data_for, noise=0.4, **options):
    """compare() of the clean model with a drifted copy, and both models' full outputs for the reference."""
    original, pruned = normalize_proto(head_model(kind)), normalize_proto(head_model(kind, noise))
    data, arrays = data_for(kind, original)
    result = compare(original, pruned, data, batch_size=8, **options)
    full = [run_model(m.proto, {"x": arrays["x"]})[0] for m in (original, pruned)]
    return result, full, arrays


def reference_error(expected, got):
    return np.linalg.norm((got - expected).astype(np.float64)) / np.linalg.norm(expected.astype(np.float64))


def test_segment_measures_match_a_brute_force_reference(data_for):
    result, (expected, got), _ = judged("segment", data_for)
    a, b = expected.argmax(1), got.argmax(1)
    ious = [np.sum((a == c) & (b == c)) / np.sum((a == c) | (b == c)) for c in range(5) if np.any((a == c) | (b == c))]
    assert result.task == "segment" and result.images == SAMPLES
    assert result.measures["pixel-agreement"] == pytest.approx(np.mean(a == b))
    assert result.measures["miou"] == pytest.approx(np.mean(ious))
    assert 0.0 < result.measures["miou"] < 1.0  # the drifted copy really differs
    assert result.measure == "miou" and result.drop_points == pytest.approx(100 * (1 - np.mean(ious)))
    assert result.output_error == pytest.approx(reference_error(expected, got), rel=1e-5)
    assert result.agreement is None and result.accuracy_drop is None


def test_detect_map_iou_and_f1_match_a_brute_force_reference(data_for):
    for threshold in (0.5, 0.3):
        result, (expected, got), _ = judged("detect-map", data_for, threshold=threshold)
        a, b = set(zip(*np.nonzero(expected > threshold))), set(zip(*np.nonzero(got > threshold)))
        assert result.task == "detect-map" and result.measure == "iou"
        assert result.measures["iou"] == pytest.approx(len(a & b) / len(a | b))
        assert result.measures["f1"] == pytest.approx(2 * len(a & b) / (len(a) + len(b)))
        assert result.measures["pixel-agreement"] == pytest.approx(1 - len(a ^ b) / expected.size)
        assert 0.0 < result.measures["iou"] < 1.0
        assert result.drop_points == pytest.approx(100 * (1 - len(a & b) / len(a | b)))


def _ctc(steps, blank=0):
    return [int(k) for k, _ in itertools.groupby(steps) if k != blank]


def test_sequence_measures_match_a_brute_force_reference(data_for):
    for blank in (0, 2):
        result, (expected, got), _ = judged("sequence", data_for, noise=0.3, blank=blank)
        a, b = expected.argmax(2), got.argmax(2)
        matches = [_ctc(x, blank) == _ctc(y, blank) for x, y in zip(a, b)]
        assert result.task == "sequence" and result.measure == "sequence-match"
        assert result.measures["step-agreement"] == pytest.approx(np.mean(a == b))
        assert result.measures["sequence-match"] == pytest.approx(np.mean(matches))
        assert 0.0 < result.measures["sequence-match"] < 1.0
        assert result.drop_points == pytest.approx(100 * (1 - np.mean(matches)))


def test_greedy_decode_collapses_repeats_then_drops_blanks():
    assert greedy_decode(np.array([0, 3, 3, 0, 3, 1, 1, 0, 0])).tolist() == [3, 3, 1]
    assert greedy_decode(np.array([2, 2, 2]), blank=2).tolist() == []
    assert greedy_decode(np.array([], dtype=np.int64)).tolist() == []


def test_regress_has_only_the_output_error(data_for):
    result, (expected, got), _ = judged("regress", data_for)
    assert result.task == "regress" and result.measures == {} and result.measure is None
    assert result.drop_points is None and result.agreement is None
    assert result.output_error == pytest.approx(reference_error(expected, got), rel=1e-5)


def test_classify_is_as_before_with_labels(data_for):
    result, (expected, got), arrays = judged("classify", data_for)
    labels = arrays["labels"]
    assert result.task == "classify" and result.measure == "accuracy"
    assert result.agreement == pytest.approx(np.mean(expected.argmax(1) == got.argmax(1)))
    assert result.accuracy_original == pytest.approx(np.mean(expected.argmax(1) == labels))
    assert result.accuracy_pruned == pytest.approx(np.mean(got.argmax(1) == labels))
    assert result.measures == {"agreement": result.agreement, "accuracy": result.accuracy_pruned,
                               "accuracy-original": result.accuracy_original}
    assert result.drop_points == pytest.approx(100 * (result.accuracy_original - result.accuracy_pruned))


@pytest.mark.parametrize("kind", ["segment", "detect-map", "sequence", "classify"])
def test_a_model_against_itself_loses_nothing(kind, data_for):
    model = normalize_proto(head_model(kind))
    data, _ = data_for(kind, model)
    result = compare(model, model, data, batch_size=8)
    assert result.output_error == 0.0 and result.drop_points == 0.0
    assert all(value == 1.0 for name, value in result.measures.items() if not name.startswith("accuracy"))


def test_measures_do_not_depend_on_the_batch_size(data_for):
    original, pruned = normalize_proto(head_model("segment")), normalize_proto(head_model("segment", 0.4))
    data, _ = data_for("segment", original)
    one, many = (compare(original, pruned, data, batch_size=size) for size in (1, 64))
    assert one.measures == pytest.approx(many.measures) and one.images == many.images == SAMPLES


@pytest.mark.parametrize("kind", ["classify", "segment"])
def test_several_candidates_judged_in_one_pass_match_one_at_a_time(kind, data_for):
    original = normalize_proto(head_model(kind))
    candidates = [normalize_proto(head_model(kind, noise)) for noise in (0.1, 0.0, 0.6)]
    data, _ = data_for(kind, original)
    together = compare_all(original, candidates, data, batch_size=8)
    alone = [compare(original, candidate, data, batch_size=8) for candidate in candidates]
    assert [c.to_dict() for c in together] == [c.to_dict() for c in alone]
    assert together[1].output_error == 0.0 and together[2].output_error > together[0].output_error


def test_detection_from_shape_and_values(data_for):
    expected = {"segment": "segment", "detect-map": "detect-map", "logit-map": "regress", "sequence": "sequence",
                "regress": "regress", "classify": "classify"}
    for kind, task in expected.items():
        model = normalize_proto(head_model(kind))
        data, _ = data_for(kind, model)
        assert compare(model, model, data, batch_size=16).task == task, kind
    assert detect_task((4, 10, 1, 1)) == "classify"  # a 1x1-conv classifier head without a flatten
    assert detect_task((4, 1, 8, 8), np.full((4, 1, 8, 8), 0.5)) == "detect-map"
    assert detect_task((4, 1, 8, 8)) == "regress"  # without values, no probability map is assumed
    assert detect_task((4, 12, 1)) == "regress" and detect_task((4,)) == "regress"


def test_a_named_task_overrides_detection(data_for):
    original, pruned = normalize_proto(head_model("segment")), normalize_proto(head_model("segment", 0.4))
    data, _ = data_for("segment", original)
    as_regress = compare(original, pruned, data, batch_size=8, task="regress")
    assert as_regress.task == "regress" and as_regress.measure is None and as_regress.measures == {}
    logits = normalize_proto(head_model("logit-map"))
    data, _ = data_for("logit-map", logits)
    forced = compare(logits, logits, data, batch_size=8, task="detect-map", threshold=0.0)
    assert forced.task == "detect-map" and forced.measures["iou"] == 1.0


def test_a_task_that_does_not_fit_the_output_is_refused(data_for):
    model = normalize_proto(head_model("classify"))
    data, _ = data_for("classify", model)
    message = "task 'segment' does not fit the model's first output 'y' of shape N x 10; tasks that fit it: classify, regress"
    with pytest.raises(InputError) as caught:
        compare(model, model, data, task="segment")
    assert str(caught.value) == message
    with pytest.raises(InputError, match=r"unknown task 'segmentation'; choose one of classify, segment, "
                                         r"detect-map, sequence, regress"):
        compare(model, model, data, task="segmentation")
    assert TASKS == ("classify", "segment", "detect-map", "sequence", "regress")


def test_to_dict_carries_the_task_and_its_measures(data_for):
    result, _, _ = judged("detect-map", data_for)
    row = json.loads(json.dumps(result.to_dict()))
    assert row["task"] == "detect-map" and row["measure"] == "iou" and set(row["measures"]) == {"iou", "f1", "pixel-agreement"}
    assert row["drop_points"] == pytest.approx(result.drop_points) and row["agreement"] is None


def test_comparisons_built_positionally_keep_their_meaning():
    old = Comparison(100, 0.9, 0.2, 0.90, 0.88)
    assert old.task == "classify" and old.measure == "accuracy" and old.drop_points == pytest.approx(2.0)
    assert Comparison(10, None, 0.1, None, None).measure is None
