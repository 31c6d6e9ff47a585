"""The masked evaluator: one session, any plan, the same outputs as the truly pruned model."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_graphsurgeon.logger import G_LOGGER

from corpus import export_corpus_model
from edgeprune.analysis import analyze
from edgeprune.graph import load_model
from edgeprune.search import MaskedEvaluator
from edgeprune.surgery import apply_plan, random_inputs, run_model
from plans import random_plan

G_LOGGER.severity = G_LOGGER.ERROR

ARCHITECTURES = ("resnet20", "mobilenet_v2", "densenet", "shufflenet", "resnext", "flatten_gemm_head", "two_in_two_out")


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_masked_outputs_equal_the_pruned_model(name, corpus_dir):
    model = load_model(export_corpus_model(name, "legacy", corpus_dir))
    analysis = analyze(model)
    batches = [random_inputs(model, batch=2, seed=seed) for seed in (0, 1)]
    evaluator = MaskedEvaluator(model, analysis, batches, provider="cpu")
    for seed in (3, 4):
        plan = random_plan(analysis, seed)
        pruned = apply_plan(model, analysis, plan)
        results = evaluator.evaluate(plan.kept)
        assert len(results) == len(batches)
        for feeds, got in zip(batches, results):
            expected = run_model(pruned, feeds)
            assert set(expected) <= set(got)
            for key, value in expected.items():
                scale = max(float(np.abs(value).max()), 1e-6)
                assert np.abs(got[key] - value).max() / scale < 1e-4, (name, seed, key)


def test_groups_left_out_keep_every_channel_and_extra_outputs_come_back(corpus_dir):
    model = load_model(export_corpus_model("resnet20", "legacy", corpus_dir))
    analysis = analyze(model)
    feeds = random_inputs(model, batch=2, seed=0)
    producer = analysis.prunable_groups[0].producers[0]
    extra = next(n.output[0] for n in model.proto.graph.node if n.name == producer)
    evaluator = MaskedEvaluator(model, analysis, [feeds], extra_outputs=[extra], provider="cpu")
    (result,) = evaluator.evaluate({})
    for key, value in run_model(model, feeds).items():
        np.testing.assert_allclose(result[key], value, rtol=1e-5, atol=1e-5)
    assert result[extra].shape[0] == 2
    with pytest.raises(KeyError, match="not prunable"):
        evaluator.evaluate({"no such group": (0,)})


# --- judging plans as reconstruction would leave them ------------------------------------------------------


def _calibration(tmp_path, model, count=48, seed=0):
    from edgeprune.calibration import load_calibration

    shape = [d if isinstance(d, int) and d > 0 else count for d in model.shapes[model.input_names[0]]]
    data = np.random.default_rng(seed).standard_normal([count] + shape[1:]).astype(np.float32)
    path = tmp_path / f"calib-{seed}.npz"
    np.savez(path, **{model.input_names[0]: data})
    return load_calibration(path, model)


@pytest.mark.parametrize("name", ("resnet20", "vgg", "mobilenet_v2", "resnext"))
def test_the_sequential_evaluator_is_the_truly_reconstructed_model(name, corpus_dir, tmp_path):
    """Same images, positions, ridge: the evaluator's outputs are ONNX Runtime's on the pruned model
    `reconstruct` returns, and each refitted layer's weights are the ones reconstruction wrote."""
    from onnx import numpy_helper

    from edgeprune.reconstruct import reconstruct
    from edgeprune.search.sequential import SequentialEvaluator

    model = load_model(export_corpus_model(name, "legacy", corpus_dir))
    analysis = analyze(model)
    calib = _calibration(tmp_path, model)
    batches = [b.inputs for b in calib.batches(64)]
    evaluator = SequentialEvaluator(model, analysis, batches, samples_per_image=8)
    plan = random_plan(analysis, 5, 0.3, 0.9)
    rebuilt, report = reconstruct(model, apply_plan(model, analysis, plan), analysis, plan, calib,
                                  samples_per_image=8, provider="cpu")
    (got,) = evaluator.evaluate(plan.kept)
    for key, value in run_model(rebuilt, batches[0]).items():  # the unreconstructed model is 10-50% away
        assert np.abs(got[key] - value).max() / np.abs(value).max() < 1e-2, key
    written = {t.name: numpy_helper.to_array(t) for t in rebuilt.proto.graph.initializer}
    applied = {layer.node for layer in report.layers if layer.applied}
    assert applied == set(evaluator.last_fits) and applied
    keep = analysis.keep_mask(plan.kept)
    nodes = {n.name: n for n in model.proto.graph.node}
    determined = {layer.node for layer in report.layers if layer.rows >= 2 * layer.columns}  # a unique fit
    assert determined & applied
    for node in applied & determined:
        grouped = any(a.name == "group" and a.i > 1 for a in nodes[node].attribute)
        if nodes[node].op_type != "Conv" or grouped or f"{node}.weight.refit" not in written:
            continue
        mine = evaluator.last_fits[node][(node, 1)]
        rows = analysis.kept_positions(nodes[node].output[0], keep)
        rows = np.ones(len(mine), bool) if rows is None else rows
        columns = analysis.kept_positions(nodes[node].input[0], keep)
        mine = mine if columns is None else mine[:, columns]
        expected = written[f"{node}.weight.refit"]  # float32 activations of torch and ONNX Runtime differ a little
        assert np.abs(mine[rows] - expected).max() <= 1e-2 * np.abs(expected).max(), node


def test_sequential_judging_keeps_the_judged_images_apart_and_returns_only_theirs(corpus_dir, tmp_path):
    from edgeprune.search.sequential import SequentialEvaluator

    model = load_model(export_corpus_model("vgg", "legacy", corpus_dir))
    analysis = analyze(model)
    calib = _calibration(tmp_path, model, count=40)
    batches = [b.inputs for b in calib.batches(20)]
    evaluator = SequentialEvaluator(model, analysis, batches, fit_images=20, judge_images=20)
    plan = random_plan(analysis, 2, 0.3, 0.9)
    (unpruned,) = evaluator.evaluate({})
    (judged,) = evaluator.evaluate(plan.kept)
    output = model.output_names[0]
    assert len(judged[output]) == 20
    np.testing.assert_allclose(unpruned[output], run_model(model, batches[1])[output], rtol=1e-4, atol=1e-4)
    alone = SequentialEvaluator(model, analysis, batches[:1], fit_images=20)  # the same rows, judged on themselves
    assert not np.allclose(alone.evaluate(plan.kept)[0][output], judged[output])


def _two_conv_model(seed=3):
    """x -> Conv(3->6) -> Relu -> Conv(6->5) -> GlobalAveragePool -> Flatten -> Gemm(5->4)."""
    from onnx import TensorProto, helper, numpy_helper

    from edgeprune.graph import normalize_proto

    rng = np.random.default_rng(seed)
    tensors = {"w1": rng.standard_normal((6, 3, 3, 3)), "b1": rng.standard_normal(6),
               "w2": rng.standard_normal((5, 6, 3, 3)), "b2": rng.standard_normal(5),
               "w3": rng.standard_normal((4, 5)), "b3": rng.standard_normal(4)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2", "b2"], ["c"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("GlobalAveragePool", ["c"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1, name="head")]
    graph = helper.make_graph(nodes, "two", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in tensors.items()])
    return normalize_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10))


def test_the_closed_form_refit_is_reconstruction_of_a_layer_whose_inputs_nothing_else_changed(tmp_path):
    """conv2 loses inputs and nothing before it is refitted: the ridge refit from the Gram statistics is
    the refit `reconstruct` makes of it (scope lost), and the one-session evaluator computes that model."""
    from onnx import numpy_helper

    from edgeprune.capture.grams import capture_grams
    from edgeprune.reconstruct import reconstruct
    from edgeprune.scoring.plan_refit import PlanRefit
    from edgeprune.search.reconstructed import ReconstructedEvaluator
    from edgeprune.surgery import PruningPlan

    model = _two_conv_model()
    analysis = analyze(model)
    calib = _calibration(tmp_path, model, count=40)
    group = next(g for g in analysis.prunable_groups if "conv1" in g.producers)
    plan = PruningPlan(model_sha256=analysis.model_sha256, kept={group.id: (0, 2, 3, 5)}, strategy="test", seed=0)
    rebuilt, report = reconstruct(model, apply_plan(model, analysis, plan), analysis, plan, calib,
                                  samples_per_image=8, provider="cpu", scope="lost")
    assert [layer.node for layer in report.layers if layer.applied] == ["conv2"]
    refit = PlanRefit(model, analysis, capture_grams(model, analysis, calib, samples_per_image=8, provider="cpu"))
    (fit,) = refit.refit(plan.kept)
    written = {t.name: numpy_helper.to_array(t) for t in rebuilt.proto.graph.initializer}
    np.testing.assert_allclose(fit.weight[:, [0, 2, 3, 5]], written["conv2.weight.refit"], rtol=1e-4, atol=1e-5)
    batch = next(iter(calib.batches(40))).inputs
    evaluator = ReconstructedEvaluator(model, analysis, refit, [batch], provider="cpu")
    (got,) = evaluator.evaluate(plan.kept)
    np.testing.assert_allclose(got["y"], run_model(rebuilt, batch)["y"], rtol=1e-4, atol=1e-4)
    assert refit.loss(plan.kept) > 0 and refit.loss({}) == 0
