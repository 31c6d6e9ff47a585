"""The zoo architectures and the torch -> ONNX exporter, checked against torch on every architecture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from corpus import (
    CORPUS_ARCHITECTURES,
    EXPORTERS,
    LIGHT_MODELS,
    export_corpus,
    export_corpus_model,
    light_model_paths,
)
from edgeprune import zoo
from edgeprune.errors import InputError
from edgeprune.export import export_torch

def _session(path: Path):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _torch_outputs(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(*inputs)
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def _dim0(value: onnx.ValueInfoProto) -> str | int:
    dim = value.type.tensor_type.shape.dim[0]
    return dim.dim_param or dim.dim_value


def _op_counts(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


@pytest.fixture(scope="module")
def exported(request: pytest.FixtureRequest, corpus_dir: Path) -> Path:
    """Export, in parallel, every (name, exporter) pair that the selected tests of this module ask for."""
    pairs: set[tuple[str, str]] = set()
    for item in request.session.items:
        params = item.callspec.params if hasattr(item, "callspec") else {}
        if getattr(item, "module", None) is request.module and "name" in params and "exporter" in params:
            pairs.add((params["name"], params["exporter"]))
    export_corpus(sorted(pairs), corpus_dir)
    return corpus_dir


def test_registry_is_the_corpus() -> None:
    assert sorted(zoo.ARCHITECTURES) == sorted(CORPUS_ARCHITECTURES)


@pytest.mark.slow
@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", CORPUS_ARCHITECTURES)
def test_export_is_valid_and_matches_torch(name: str, exporter: str, exported: Path) -> None:
    path = export_corpus_model(name, exporter, exported)
    model = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version <= 10
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert len(model.graph.input) == len(zoo.input_shapes(name))
    assert [_dim0(v) for v in [*model.graph.input, *model.graph.output]] == ["batch"] * (
        len(model.graph.input) + len(model.graph.output)
    )

    torch_model = zoo.build(name, seed=0)
    session = _session(path)
    for batch in (1, 3):  # neither is the export batch (2): the batch dimension must really be dynamic
        inputs = zoo.example_inputs(name, batch=batch, seed=batch)
        expected = _torch_outputs(torch_model, inputs)
        got = session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)})
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.shape == e.shape
            scale = float(np.abs(e).max())
            assert scale > 0.1, "degenerate outputs would make the comparison meaningless"
            np.testing.assert_allclose(g, e, rtol=0, atol=1e-4 * scale)


@pytest.mark.slow
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_batchnorm_after_conv_is_folded(exporter: str, exported: Path) -> None:
    """Both exporters fold BN that follows a Conv; DenseNet's pre-activation BNs (after Concat) stay."""
    for name in ("vgg", "resnet20", "mobilenet_v3", "shufflenet", "unet"):
        assert "BatchNormalization" not in _op_counts(onnx.load(str(export_corpus_model(name, exporter, exported))))
    assert _op_counts(onnx.load(str(export_corpus_model("densenet", exporter, exported))))["BatchNormalization"] == 7


@pytest.mark.parametrize("name", CORPUS_ARCHITECTURES)
def test_build_is_deterministic_with_nontrivial_batchnorm(name: str) -> None:
    first, again, other = zoo.build(name, seed=0), zoo.build(name, seed=0), zoo.build(name, seed=1)
    state, state_again, state_other = first.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(state[k], state_again[k]) for k in state)
    assert any(not torch.equal(state[k], state_other[k]) for k in state if state[k].is_floating_point())
    assert not first.training
    norms = [m for m in first.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms
    for norm in norms:
        assert not norm.training
        assert not torch.allclose(norm.running_mean, torch.zeros_like(norm.running_mean))
        assert not torch.allclose(norm.running_var, torch.ones_like(norm.running_var))
        assert not torch.allclose(norm.weight, torch.ones_like(norm.weight))
        assert not torch.allclose(norm.bias, torch.zeros_like(norm.bias))


def test_build_does_not_disturb_the_global_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    zoo.build("vgg", seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_example_inputs_follow_the_declared_shapes() -> None:
    (fashion,) = zoo.example_inputs("resnet20", batch=4)
    assert fashion.shape == (4, 1, 28, 28)
    (rgb,) = zoo.example_inputs("resnet20", batch=1, in_channels=3)
    assert rgb.shape == (1, 3, 28, 28)
    assert zoo.build("resnet20", in_channels=3)(rgb).shape == (1, 10)
    assert [x.shape for x in zoo.example_inputs("two_in_two_out")] == [(2, 3, 32, 32), (2, 1, 32, 32)]
    assert torch.equal(zoo.example_inputs("vgg", seed=3)[0], zoo.example_inputs("vgg", seed=3)[0])


def test_unknown_architecture_lists_the_valid_names() -> None:
    with pytest.raises(InputError, match="unknown architecture 'resnet1000'") as info:
        zoo.build("resnet1000")
    assert all(name in str(info.value) for name in CORPUS_ARCHITECTURES)
    with pytest.raises(InputError, match="choose one of"):
        zoo.example_inputs("nope")


class _Unexportable(torch.nn.Module):
    """SVD has no ONNX translation in either exporter."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.svd(x)[1]


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_failed_export_leaves_no_file(exporter: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^could not export the torch module to ONNX: .*svd"):
        export_torch(_Unexportable(), (torch.randn(2, 4, 4),), tmp_path / "m.onnx", exporter=exporter,
                     dynamic_batch=False)
    assert list(tmp_path.iterdir()) == []


def test_failed_export_keeps_the_previous_file(tmp_path: Path) -> None:
    existing = tmp_path / "existing.onnx"
    existing.write_bytes(b"previous model")
    with pytest.raises(InputError):
        export_torch(_Unexportable(), (torch.randn(2, 4, 4),), existing)
    assert existing.read_bytes() == b"previous model"
    assert list(tmp_path.iterdir()) == [existing]


def test_unknown_exporter_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown exporter 'onnx2'"):
        export_torch(zoo.build("gap_gemm_head"), zoo.example_inputs("gap_gemm_head"), tmp_path / "m.onnx",
                     exporter="onnx2")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_static_batch_names_and_training_mode(tmp_path: Path) -> None:
    model = zoo.build("two_in_two_out")
    model.train()
    path = export_torch(model, zoo.example_inputs("two_in_two_out", batch=2), tmp_path / "sub" / "m.onnx",
                        dynamic_batch=False, input_names=["rgb", "depth"], output_names=["logits", "dense"])
    assert path == tmp_path / "sub" / "m.onnx"
    assert model.training, "the module's mode is restored after the export"
    onnx_model = onnx.load(str(path))
    assert [v.name for v in onnx_model.graph.input] == ["rgb", "depth"]
    assert [v.name for v in onnx_model.graph.output] == ["logits", "dense"]
    assert [_dim0(v) for v in [*onnx_model.graph.input, *onnx_model.graph.output]] == [2, 2, 2, 2]
    assert "BatchNormalization" not in _op_counts(onnx_model), "exported in eval mode: BN folded"


def test_light_models_are_shipped() -> None:
    paths = light_model_paths()
    assert [p.name for p in paths] == [f"light_{name}.onnx" for name in LIGHT_MODELS]
    for path in paths:
        graph = onnx.load(str(path), load_external_data=False).graph
        assert any(node.op_type == "Conv" for node in graph.node)


def test_unwritable_path_is_an_input_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    with pytest.raises(InputError, match="could not write the ONNX model to"):
        export_torch(zoo.build("gap_gemm_head"), zoo.example_inputs("gap_gemm_head"), blocker / "m.onnx")
    assert list(tmp_path.iterdir()) == [blocker]
