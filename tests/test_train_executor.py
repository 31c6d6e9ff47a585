"""The torch executor of ONNX graphs: equal to ONNX Runtime on every corpus model, exact gradients, and a
write-back that changes only initializer values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from onnx import helper
from onnx_graphsurgeon.logger import G_LOGGER

from builders import init, make_model, tensor_info
from corpus import CORPUS_ARCHITECTURES, EXPORTERS, export_corpus_model, light_model_paths
from edgeprune.graph import ModelGraph, load_model, normalize_proto
from edgeprune.surgery import random_inputs, run_model
from edgeprune.train import GraphModule, UnsupportedOpError, write_back
from random_graphs import cnn_models
from test_light_models import _with_real_weights

G_LOGGER.severity = G_LOGGER.ERROR


def _run(module: GraphModule, feeds) -> dict[str, np.ndarray]:
    with torch.no_grad():
        outputs = module(*[torch.from_numpy(feeds[name]) for name in module.input_names])
    return {name: out.numpy() for name, out in zip(module.output_names, outputs)}


def _assert_matches_runtime(model: ModelGraph, feeds, rtol: float = 1e-4) -> None:
    expected, got = run_model(model, feeds), _run(GraphModule(model), feeds)
    for name, reference in expected.items():
        scale = max(float(np.abs(reference).max()), 1e-6)
        error = float(np.abs(got[name].astype(np.float64) - reference).max()) / scale
        assert got[name].shape == reference.shape, name
        assert error <= rtol, f"output {name}: relative error {error:.2e}"


@pytest.mark.parametrize("name,exporter", [(n, e) for n in CORPUS_ARCHITECTURES for e in EXPORTERS])
def test_executor_equals_onnx_runtime_on_the_corpus(name, exporter, corpus_dir):
    model = load_model(export_corpus_model(name, exporter, corpus_dir))
    for batch in (1, 3):
        _assert_matches_runtime(model, random_inputs(model, batch=batch, seed=batch))


@pytest.mark.parametrize("path", light_model_paths(), ids=lambda p: p.stem.removeprefix("light_"))
def test_executor_equals_onnx_runtime_on_the_light_topologies(path):
    model = _with_real_weights(load_model(path))
    _assert_matches_runtime(model, random_inputs(model, batch=1, seed=0))


def test_unchanged_weights_write_back_byte_identical():
    model = load_model("edgeprune/reference/resnet20_fmnist.onnx")
    module = GraphModule(model)
    assert write_back(model, module.onnx_parameters()).serialized() == model.serialized()


def test_written_back_weights_are_what_onnx_runtime_runs():
    model = load_model("edgeprune/reference/mobilenet_v2_fmnist.onnx")
    module = GraphModule(model)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.mul_(1.1).add_(0.01)
    trained = write_back(model, module.onnx_parameters())
    assert [n.op_type for n in trained.proto.graph.node] == [n.op_type for n in model.proto.graph.node]
    assert trained.serialized() != model.serialized()
    feeds = random_inputs(model, batch=2, seed=3)
    expected, got = run_model(trained, feeds), _run(module, feeds)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-4 * np.abs(expected[name]).max())


def test_parameters_keep_their_onnx_names_and_shape_constants_stay_constant():
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv"),
             helper.make_node("Resize", ["c", "", "scales"], ["r"], name="up", mode="nearest"),
             helper.make_node("Mul", ["r", "gamma"], ["y"], name="scale")]
    rng = np.random.default_rng(0)
    inits = [init("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)), init("b", np.zeros(4, np.float32)),
             init("scales", np.array([1, 1, 2, 2], np.float32)), init("gamma", np.ones((1, 4, 1, 1), np.float32))]
    proto = make_model(nodes, [tensor_info("x", [1, 3, 8, 8])], [tensor_info("y", [1, 4, 12, 12])], inits)
    module = GraphModule(ModelGraph.from_proto(proto))
    assert sorted(module.onnx_parameters()) == ["b", "gamma", "w"]


def test_an_op_without_kernel_is_refused_naming_node_and_op():
    nodes = [helper.make_node("CumSum", ["x", "axis"], ["y"], name="running_total")]
    proto = make_model(nodes, [tensor_info("x", [1, 4])], [tensor_info("y", [1, 4])],
                       [init("axis", np.array(1, np.int64))])
    with pytest.raises(UnsupportedOpError, match=r"node 'running_total' \(CumSum\)"):
        GraphModule(ModelGraph.from_proto(proto))


def _double_module(model: ModelGraph) -> GraphModule:
    return GraphModule(model).double()


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
@given(st.data())
def test_gradients_agree_with_finite_differences(data):
    """d(probe . outputs)/d(weight) from autograd against central differences, in float64."""
    drawn = data.draw(cnn_models(opaque="never"))
    model = normalize_proto(drawn.proto)
    module = _double_module(model)
    feeds = {k: torch.from_numpy(v.astype(np.float64)) for k, v in random_inputs(model, batch=2, seed=1).items()}
    outputs = module(feeds)
    rng = np.random.default_rng(2)
    probes = [torch.from_numpy(rng.standard_normal(tuple(o.shape))) for o in outputs]

    def objective() -> torch.Tensor:
        return sum((p * o).sum() for p, o in zip(probes, module(feeds)))

    objective().backward()
    checked = 0
    for name, parameter in sorted(module.onnx_parameters().items())[:6]:
        flat = parameter.data.view(-1)
        for index in rng.choice(flat.numel(), size=min(3, flat.numel()), replace=False):
            analytic = float(parameter.grad.view(-1)[index])
            original, eps = float(flat[index]), 1e-6
            with torch.no_grad():
                flat[index] = original + eps
                up = float(objective())
                flat[index] = original - eps
                down = float(objective())
                flat[index] = original
            numeric = (up - down) / (2 * eps)
            assert abs(analytic - numeric) <= 1e-4 * max(1.0, abs(numeric)), (name, drawn.blocks, analytic, numeric)
            checked += 1
    assert checked > 0


def test_training_batchnorms_start_as_the_identity_and_fold_back_into_the_convs():
    from edgeprune.train.batchnorm import calibrate

    model = load_model("edgeprune/reference/resnet20_fmnist.onnx")
    module = GraphModule(model, conv_batchnorm=True)
    assert len(module.norms) == sum(n.op_type == "Conv" for n in model.proto.graph.node)
    x = torch.from_numpy(np.load("calibration/fashion-mnist/sample.npz")["input"])
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(x)))
    calibrate(module.norms.values(), lambda: [module(x[order[i:i + 100]]) for i in range(0, len(x), 100)])
    feeds = {"input": x[:32].numpy()}
    expected = run_model(model, feeds)["logits"]
    np.testing.assert_allclose(_run(module.eval(), feeds)["logits"], expected, atol=1e-4 * np.abs(expected).max())
    with torch.no_grad():  # as training would leave them: other statistics and affine
        for norm in module.norms.values():
            norm.running_mean.add_(0.05)
            norm.weight.mul_(1.2)
    trained = write_back(model, module.onnx_parameters())
    assert [n.op_type for n in trained.proto.graph.node] == [n.op_type for n in model.proto.graph.node]
    got, want = run_model(trained, feeds)["logits"], _run(module.eval(), feeds)["logits"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
