"""Loading and normalisation: one clear InputError per bad input; every rewrite keeps the model's outputs."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx_graphsurgeon.logger import G_LOGGER

from builders import (
    assert_close,
    channel_shuffle_model,
    constant_weights_model,
    conv_bn_relu_model,
    conv_mul_add_model,
    random_inputs,
    relu_bn_model,
    run_model,
    two_group_model,
    write_model,
)
from edgeprune.errors import InputError
from edgeprune.graph import load_model, read_model_proto
from edgeprune.graph.model import MAX_IR_VERSION

G_LOGGER.severity = G_LOGGER.ERROR


def _ops(model) -> Counter:
    proto = model.proto if hasattr(model, "proto") else model
    return Counter(node.op_type for node in proto.graph.node)


def _load_error(path: Path) -> str:
    """Load ``path``, expecting an InputError; return its one-line message."""
    with pytest.raises(InputError) as caught:
        load_model(path)
    message = str(caught.value)
    assert "\n" not in message, message
    assert caught.value.exit_code == 2
    return message


# ---------------------------------------------------------------- bad inputs


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.onnx"
    message = _load_error(path)
    assert "not found" in message and str(path) in message
    assert "check the path" in message


def test_directory(tmp_path: Path) -> None:
    message = _load_error(tmp_path)
    assert "directory" in message and str(tmp_path) in message
    assert ".onnx" in message  # says to pass the model file instead


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("this is not an ONNX model\njust some text\n", encoding="utf-8")
    message = _load_error(path)
    assert str(path) in message and "not a readable ONNX model" in message
    assert "complete .onnx export" in message


@pytest.mark.parametrize("fraction", [0.5, 0.25, 0.9])
def test_truncated_model(tmp_path: Path, fraction: float) -> None:
    full = write_model(two_group_model(), tmp_path / "full.onnx")
    assert len(full.read_bytes()) > 2000  # has real initializers to cut through
    cut = tmp_path / "cut.onnx"
    data = full.read_bytes()
    cut.write_bytes(data[: int(len(data) * fraction)])
    message = _load_error(cut)
    assert str(cut) in message and "ONNX" in message
    assert "truncated" in message or "complete" in message


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    message = _load_error(path)
    assert str(path) in message and "no ONNX graph" in message and "empty" in message


@pytest.mark.parametrize("data", [b"\x00" * 64, np.random.default_rng(0).bytes(4096)], ids=["zeros", "random"])
def test_garbage_protobuf(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "garbage.onnx"
    path.write_bytes(data)
    message = _load_error(path)
    assert str(path) in message and "ONNX" in message


def test_missing_external_data(tmp_path: Path) -> None:
    path = write_model(two_group_model(), tmp_path / "ext.onnx", external=True)
    (tmp_path / "ext.onnx.data").unlink()
    message = _load_error(path)
    assert "external" in message and "missing" in message
    assert "beside" in message  # says where the data file must be


# ---------------------------------------------------------------- good inputs


def test_external_data_loads_with_same_outputs(tmp_path: Path) -> None:
    original = two_group_model()
    path = write_model(original, tmp_path / "ext.onnx", external=True)
    assert (tmp_path / "ext.onnx.data").stat().st_size > path.stat().st_size  # the weights really are outside
    model = load_model(path)
    assert not any(
        t.data_location == onnx.TensorProto.EXTERNAL for t in model.proto.graph.initializer
    ), "the loaded model should hold its weights in memory"
    feeds = random_inputs(original)
    assert_close(run_model(model.proto, feeds), run_model(original, feeds))
    assert_close(run_model(path, feeds), run_model(original, feeds))


def test_read_model_proto_keeps_the_model_as_is(tmp_path: Path) -> None:
    original = relu_bn_model()
    proto = read_model_proto(write_model(original, tmp_path / "m.onnx"))
    assert _ops(proto) == _ops(original)


@pytest.mark.parametrize("external", [False, True], ids=["inline", "external"])
def test_loading_never_modifies_the_input(tmp_path: Path, external: bool) -> None:
    path = write_model(constant_weights_model(), tmp_path / "m.onnx", external=external)
    files = sorted(tmp_path.iterdir())
    before = {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in files}
    load_model(path)
    load_model(str(path))
    assert sorted(tmp_path.iterdir()) == files  # nothing written beside it either
    assert {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in files} == before


# ---------------------------------------------------------------- normalisation


def _normalised(proto: onnx.ModelProto, tmp_path: Path, batch: int = 1):
    """Load ``proto`` from a file; check it is valid and computes what the original computes."""
    model = load_model(write_model(proto, tmp_path / "model.onnx"))
    assert model.proto.ir_version <= MAX_IR_VERSION <= 10
    onnx.checker.check_model(model.proto, full_check=True)
    feeds = random_inputs(proto, batch=batch, seed=11)
    assert_close(run_model(model.proto, feeds), run_model(proto, feeds), rtol=1e-5)
    return model


def test_constant_nodes_become_initializers(tmp_path: Path) -> None:
    original = constant_weights_model()
    assert _ops(original)["Constant"] == 3
    model = _normalised(original, tmp_path)
    assert "Constant" not in _ops(model)
    conv_inputs = {name for n in model.proto.graph.node if n.op_type == "Conv" for name in n.input[1:]}
    initializers = {t.name for t in model.proto.graph.initializer}
    assert conv_inputs and conv_inputs <= initializers
    assert any("folded constants" in note for note in model.notes)


def test_batchnorm_after_conv_is_folded(tmp_path: Path) -> None:
    model = _normalised(conv_bn_relu_model(), tmp_path)
    assert "BatchNormalization" not in _ops(model)
    assert _ops(model) == Counter({"Conv": 2, "Relu": 1})
    assert any("BatchNormalization" in note for note in model.notes)


def test_per_channel_mul_add_after_conv_is_folded(tmp_path: Path) -> None:
    model = _normalised(conv_mul_add_model(), tmp_path)
    assert _ops(model) == Counter({"Conv": 2, "Relu": 1})
    first = next(n for n in model.proto.graph.node if n.op_type == "Conv" and n.input[0] == "x")
    assert len(first.input) == 3  # the Add became the conv's bias


def test_batchnorm_not_after_conv_stays(tmp_path: Path) -> None:
    model = _normalised(relu_bn_model(), tmp_path)
    assert _ops(model)["BatchNormalization"] == 1


def test_channel_shuffle_becomes_one_gather(tmp_path: Path) -> None:
    model = _normalised(channel_shuffle_model(channels=8, groups=2), tmp_path)
    ops = _ops(model)
    assert ops["Gather"] == 1 and "Reshape" not in ops and "Transpose" not in ops
    gather = next(n for n in model.proto.graph.node if n.op_type == "Gather")
    axis = next(a.i for a in gather.attribute if a.name == "axis")
    assert axis == 1
    indices = {t.name: onnx.numpy_helper.to_array(t) for t in model.proto.graph.initializer}[gather.input[1]]
    assert indices.tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def test_dynamic_batch_is_kept(tmp_path: Path) -> None:
    original = conv_bn_relu_model(batch="N")
    model = _normalised(original, tmp_path, batch=3)
    for info in (model.proto.graph.input[0], model.proto.graph.output[0]):
        first = info.type.tensor_type.shape.dim[0]
        assert first.dim_param == "N" and not first.HasField("dim_value"), info.name
    assert model.shapes["x"][0] == "N" and model.shapes["y"][0] == "N"
    for batch in (1, 3):
        feeds = random_inputs(original, batch=batch, seed=batch)
        outputs = run_model(model.proto, feeds)
        assert outputs[0].shape[0] == batch
        assert_close(outputs, run_model(original, feeds))


def test_normalising_twice_changes_nothing(tmp_path: Path) -> None:
    once = load_model(write_model(conv_mul_add_model(), tmp_path / "a.onnx"))
    twice = load_model(once.save(tmp_path / "b.onnx"))
    assert _ops(twice) == _ops(once)
    feeds = random_inputs(once.proto)
    assert_close(run_model(twice.proto, feeds), run_model(once.proto, feeds), rtol=1e-6)


@pytest.mark.parametrize(
    "builder",
    [conv_bn_relu_model, constant_weights_model, conv_mul_add_model, relu_bn_model, channel_shuffle_model],
)
def test_every_normalised_model_is_ir10_and_checks(tmp_path: Path, builder) -> None:
    model = _normalised(builder(), tmp_path)
    assert model.proto.ir_version <= 10
    assert os.fspath(tmp_path / "model.onnx") == model.source_path
    assert len(model.source_sha256) == 64
