"""Reconstruction: im2col rows against ONNX Runtime, the solver against exact maps, and the whole refit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_graphsurgeon.logger import G_LOGGER

from corpus import export_corpus_model
from edgeprune.analysis import analyze
from edgeprune.capture.rows import ConvGeometry, outputs_at, patches, sample_positions
from edgeprune.graph import load_model, normalize_proto
from edgeprune.reconstruct import reconstruct
from edgeprune.reconstruct.solve import rectified_fit, relative_error, ridge_fit
from edgeprune.surgery import PruningPlan, apply_plan, run_model, simple_plan

G_LOGGER.severity = G_LOGGER.ERROR


@pytest.mark.parametrize("stride,pads,dilation,groups", [(1, (1, 1, 1, 1), 1, 1), (2, (0, 1, 2, 1), 1, 1),
                                                         (1, (2, 2, 2, 2), 2, 1), (2, (1, 1, 1, 1), 1, 2)])
def test_patches_reproduce_the_convolution(stride, pads, dilation, groups):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((6, 4 // groups, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=[stride] * 2, pads=list(pads),
                            dilations=[dilation] * 2, group=groups)
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4, 9, 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model = normalize_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10))
    x = rng.standard_normal((3, 4, 9, 7)).astype(np.float32)
    y = next(iter(run_model(model, {"x": x}).values()))
    geometry = ConvGeometry.of({"strides": [stride] * 2, "pads": list(pads), "dilations": [dilation] * 2,
                                "group": groups}, weight.shape)
    positions = sample_positions(np.arange(3), y.shape[2], y.shape[3], per_image=5, seed=1)
    rows = patches(x, 0, positions, geometry)
    expected = outputs_at(y, 0, positions)
    per = 4 // groups
    for g in range(groups):
        w = weight[g * 3:(g + 1) * 3].reshape(3, -1)
        got = rows[:, g * per * 9:(g + 1) * per * 9] @ w.T + bias[g * 3:(g + 1) * 3]
        np.testing.assert_allclose(got, expected[:, g * 3:(g + 1) * 3], rtol=1e-4, atol=1e-4)


def test_positions_are_the_same_whatever_the_batching():
    whole = sample_positions(np.arange(10), 5, 5, per_image=4, seed=3)
    parts = np.concatenate([sample_positions(np.arange(0, 6), 5, 5, 4, 3), sample_positions(np.arange(6, 10), 5, 5, 4, 3)])
    np.testing.assert_array_equal(whole, parts)


def test_ridge_recovers_an_exact_linear_map():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 12))
    weight, bias = rng.standard_normal((4, 12)), rng.standard_normal(4)
    fitted_w, fitted_b = ridge_fit(x, x @ weight.T + bias, ridge=1e-9)
    np.testing.assert_allclose(fitted_w, weight, atol=1e-6)
    np.testing.assert_allclose(fitted_b, bias, atol=1e-6)
    assert relative_error(x, x @ weight.T + bias, fitted_w, fitted_b) < 1e-8


def test_rectified_fit_only_cares_about_what_passes_the_relu():
    """A target that a ReLU reads: entries below zero need only stay below zero. The rectified fit lowers the
    error after the ReLU on data where a plain least-squares fit cannot follow the kink."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, 3))
    y = np.where(x[:, :1] > 0, 2.0 * x[:, :1], -5.0 + 0.1 * x[:, 1:2])  # flat far below zero, linear above
    plain_w, plain_b = ridge_fit(x, y, 1e-6)
    w, b = rectified_fit(x, y, 1e-6, plain_w, plain_b)

    def after_relu(weight, bias):
        return np.linalg.norm(np.maximum(x @ weight.T + bias, 0) - np.maximum(y, 0))

    assert after_relu(w, b) < 0.8 * after_relu(plain_w, plain_b)
    exact_w, exact_b = rectified_fit(x, x @ plain_w.T + plain_b, 1e-9, plain_w, plain_b)  # nothing to gain
    np.testing.assert_allclose(exact_w, plain_w, atol=1e-6)


@dataclass
class _Batch:
    inputs: dict
    labels: object
    indices: np.ndarray


class _Arrays:
    """The least a calibration set must offer the reconstruction: count and batches."""

    def __init__(self, arrays: dict, labels=None) -> None:
        self.arrays, self.labels = arrays, labels
        self.count = len(next(iter(arrays.values())))

    def batches(self, size: int, indices=None):
        for start in range(0, self.count, size):
            stop = min(start + size, self.count)
            yield _Batch({k: v[start:stop] for k, v in self.arrays.items()}, None, np.arange(start, stop))


@pytest.mark.parametrize("name", ["resnet20", "resnext", "flatten_gemm_head", "mobilenet_v2"])
def test_reconstruction_brings_outputs_back(name, corpus_dir):
    model = load_model(export_corpus_model(name, "legacy", corpus_dir))
    analysis = analyze(model)
    rng = np.random.default_rng(0)

    def draw(n):
        return {i: rng.standard_normal([n] + list(model.shapes[i][1:])).astype(np.float32) for i in model.input_names}

    fit, test = _Arrays(draw(192)), draw(64)
    plan = simple_plan(analysis, 0.5, random=True, seed=1)
    pruned = apply_plan(model, analysis, plan)
    rebuilt, report = reconstruct(model, pruned, analysis, plan, fit, samples_per_image=8)
    onnx.checker.check_model(rebuilt.proto, full_check=True)
    expected, before, after = run_model(model, test), run_model(pruned, test), run_model(rebuilt, test)
    for key, value in expected.items():
        error_before = np.linalg.norm(before[key] - value) / np.linalg.norm(value)
        error_after = np.linalg.norm(after[key] - value) / np.linalg.norm(value)
        assert error_after < 0.7 * error_before, (error_before, error_after)
    assert any(layer.applied for layer in report.layers)
    assert all(layer.error_after <= layer.error_before for layer in report.layers if layer.applied)


def test_downstream_scope_also_refits_layers_whose_inputs_only_drifted(corpus_dir):
    model = load_model(export_corpus_model("resnet20", "legacy", corpus_dir))
    analysis = analyze(model)
    inner = next(g for g in analysis.prunable_groups if len(g.producers) == 1)  # one block's inner conv output
    plan = PruningPlan(analysis.model_sha256, {inner.id: tuple(range(inner.channels // 2))})
    pruned = apply_plan(model, analysis, plan)
    fit = _Arrays({i: np.random.default_rng(2).standard_normal([32] + list(model.shapes[i][1:])).astype(np.float32)
                   for i in model.input_names})
    _, lost = reconstruct(model, pruned, analysis, plan, fit, samples_per_image=4, scope="lost")
    _, downstream = reconstruct(model, pruned, analysis, plan, fit, samples_per_image=4)
    lost_nodes = {layer.node for layer in lost.layers}
    downstream_nodes = {layer.node for layer in downstream.layers}
    assert lost_nodes == set(inner.consumers)
    assert lost_nodes < downstream_nodes
    head = [n.name for n in model.proto.graph.node if n.op_type == "Gemm"]
    assert set(head) <= downstream_nodes  # the classifier is refitted against the drift it receives
    notes = {layer.node: layer.note for layer in downstream.layers}
    assert any(note == "fitted to the residual sum after the ReLU" for note in notes.values())  # a block's last conv
    assert all(notes[name] == "fitted to its output" for name in head)
    with pytest.raises(ValueError, match="scope"):
        reconstruct(model, pruned, analysis, plan, fit, scope="everything")


def test_requested_outputs_survive_runtime_fusions():
    """ONNX Runtime's Conv+Add+Relu fusion dropped a residual conv output that was asked for as a graph output
    on this pruned model (session creation failed); sessions that read intermediate tensors leave it out."""
    import json
    from pathlib import Path

    from edgeprune.capture import ActivationRunner
    from edgeprune.reference import model_path

    model = load_model(model_path("resnet20_fmnist"))
    analysis = analyze(model)
    kept = json.loads((Path(__file__).parent / "data" / "resnet20_fusion_plan.json").read_text())["kept"]
    pruned = apply_plan(model, analysis, PruningPlan(analysis.model_sha256, {k: tuple(v) for k, v in kept.items()}))
    names = ["/blocks/blocks.6/body/body.0/body.0.2/Relu_output_0", "/blocks/blocks.6/shortcut/shortcut.0/Conv_output_0"]
    values = ActivationRunner(pruned, names, "cpu").run({"input": np.zeros((2, 1, 28, 28), np.float32)})
    assert values[names[1]].shape == (2, len(kept["/blocks/blocks.6/shortcut/shortcut.0/Conv"]), 7, 7)
