"""`edgeprune analyze`: the curve as JSON and PNG, Grad-CAM from a TorchScript model, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx_graphsurgeon.logger import G_LOGGER

from builders import two_group_model, write_model
from cli_runner import run

G_LOGGER.severity = G_LOGGER.ERROR


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return write_model(two_group_model(), tmp_path_factory.mktemp("model") / "two.onnx")


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("calib") / "calib.npz"
    np.savez(path, x=np.random.default_rng(0).standard_normal((12, 3, 8, 8)).astype(np.float32))
    return path


def analyze(capsys, model, calib, out, *extra):
    return run(capsys, "analyze", model, "--calib", calib, "--out", out, "--provider", "cpu", *extra)


def test_analyze_writes_the_curve_and_the_plot(capsys, model, calib, tmp_path):
    code, out, err = analyze(capsys, model, calib, tmp_path / "run")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["superization.json", "superization.png"]
    assert (tmp_path / "run" / "superization.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curve = json.loads((tmp_path / "run" / "superization.json").read_text())["curve"]
    assert curve["saliency"] == "mean" and curve["images"] == 12
    assert [layer["tensor"] for layer in curve["layers"]] == ["ra", "rb"]
    assert len(curve["entropy"]) == 2 and curve["superization"] == [pytest.approx(curve["entropy"][1] - curve["entropy"][0])]
    assert all(0 < h <= 6 for h in curve["entropy"])  # 8 levels: at most log2(64) bits
    assert "superization curve (mean saliency, 12 images)" in out and "relu_b" in out


def test_analyze_is_deterministic_and_offers_aura_mi_weights(capsys, model, calib, tmp_path):
    assert analyze(capsys, model, calib, tmp_path / "a", "--no-plot")[0] == 0
    assert analyze(capsys, model, calib, tmp_path / "b", "--no-plot")[0] == 0
    assert (tmp_path / "a" / "superization.json").read_text().replace("/a", "") == \
        (tmp_path / "b" / "superization.json").read_text().replace("/b", "")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["superization.json"]
    code, _, err = analyze(capsys, model, calib, tmp_path / "mi", "--saliency", "aura-mi", "--no-plot")
    assert code == 0, err
    assert json.loads((tmp_path / "mi" / "superization.json").read_text())["curve"]["saliency"] == "aura-mi"
    code, _, err = analyze(capsys, model, calib, tmp_path / "r4", "--resolution", "4", "--no-plot")
    assert code == 0, err
    layers = json.loads((tmp_path / "r4" / "superization.json").read_text())["curve"]["layers"]
    assert [(layer["height"], layer["width"], layer["levels"]) for layer in layers] == [(4, 4, 4), (4, 4, 4)]
    code, _, err = analyze(capsys, model, calib, tmp_path / "r1", "--resolution", "1")
    assert code == 2 and "--resolution must be at least 2" in err and not (tmp_path / "r1").exists()


def test_bad_inputs_give_one_line_exit_2_and_write_nothing(capsys, model, calib, tmp_path):
    not_onnx = tmp_path / "junk.onnx"
    not_onnx.write_text("not a model")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((4, 1, 5, 5), dtype=np.float32))
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [
        (tmp_path / "missing.onnx", calib, tmp_path / "o1"),
        (not_onnx, calib, tmp_path / "o2"),
        (model, tmp_path / "missing.npz", tmp_path / "o3"),
        (model, wrong, tmp_path / "o4"),
        (model, calib, a_file),
        (model, calib, a_file / "sub"),
    ]
    for model_path, calib_path, out in cases:
        code, _, err = analyze(capsys, model_path, calib_path, out)
        assert code == 2, (model_path, calib_path, out, err)
        assert err.startswith("edgeprune: error: ") and err.count("\n") == 1, err
        assert not Path(out).is_dir()
    assert a_file.read_text() == "x"


def _torch_pair(folder: Path, seed: int, other_seed: int | None = None, other_head: bool = False) -> tuple[Path, Path]:
    """A small CNN as ONNX and as TorchScript (optionally with other weights, to be caught)."""
    torch = pytest.importorskip("torch")
    from torch import nn

    def build(s):
        torch.manual_seed(s)
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(6, 4, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(4, 5)).eval()

    net = build(seed)
    x = torch.randn(2, 3, 8, 8)
    onnx_path = folder / "net.onnx"
    torch.onnx.export(net, (x,), str(onnx_path), input_names=["x"], output_names=["logits"], dynamo=False,
                      dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    script_path = folder / "net.pt"
    if other_head:
        with torch.no_grad():
            net[-1].bias += 1.0
    torch.jit.trace(build(other_seed) if other_seed is not None else net, x).save(str(script_path))
    return onnx_path, script_path


def test_grad_cam_from_a_torchscript_model(capsys, calib, tmp_path):
    onnx_path, script_path = _torch_pair(tmp_path, seed=0)
    code, out, err = analyze(capsys, onnx_path, calib, tmp_path / "run", "--torch-model", script_path)
    assert code == 0, err
    curve = json.loads((tmp_path / "run" / "superization.json").read_text())["curve"]
    convs = [n.name for n in onnx.load(onnx_path).graph.node if n.op_type == "Conv"]
    assert curve["saliency"] == "grad-cam" and [layer["name"] for layer in curve["layers"]] == convs
    assert [(layer["channels"], layer["height"]) for layer in curve["layers"]] == [(8, 8), (6, 8), (4, 4)]
    assert "grad-cam saliency" in out


def test_grad_cam_refuses_a_torch_model_that_is_not_the_onnx_model(capsys, calib, tmp_path):
    onnx_path, script_path = _torch_pair(tmp_path, seed=0, other_seed=1)
    code, _, err = analyze(capsys, onnx_path, calib, tmp_path / "run", "--torch-model", script_path)
    assert code == 2 and "has no convolution with the weights of an ONNX Conv" in err
    onnx_path, script_path = _torch_pair(tmp_path, seed=0, other_head=True)  # same convs, another head
    code, _, err = analyze(capsys, onnx_path, calib, tmp_path / "run", "--torch-model", script_path)
    assert code == 2 and "does not compute what the ONNX model computes" in err
    code, _, err = analyze(capsys, onnx_path, calib, tmp_path / "run", "--torch-model", onnx_path)
    assert code == 2 and "not a TorchScript model" in err
    assert not (tmp_path / "run").exists()


def test_grad_cam_pairs_convs_by_their_weights_not_their_order():
    from edgeprune.errors import InputError
    from edgeprune.semiotic.gradcam import match_convs

    rng = np.random.default_rng(0)
    onnx_weights = [rng.standard_normal((4, 3, 3, 3)), rng.standard_normal((4, 4, 3, 3)), rng.standard_normal((4, 4, 3, 3))]
    torch_weights = [onnx_weights[0], onnx_weights[2] + 1e-7, onnx_weights[1]]
    assert match_convs(torch_weights, onnx_weights, Path("m.pt")) == [0, 2, 1]
    with pytest.raises(InputError, match="no convolution with the weights"):
        match_convs([onnx_weights[0], onnx_weights[1], onnx_weights[1] * 2], onnx_weights, Path("m.pt"))
    with pytest.raises(InputError, match="runs 2 convolutions"):
        match_convs(torch_weights[:2], onnx_weights, Path("m.pt"))
