"""Models whose height and width are dynamic, as OCR, detection and segmentation exports leave them.

Paddle-style exports (dims -1, '?', 'p2o.DynamicDimension.N', input `x`) and both torch exporters ('height'
and 'unk__0' from the legacy one, 's0'-style from dynamo): every stage works once the size is fixed (from
`--input-shape` or from calibration arrays), and none computes anything at an unknown size.
"""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest

from builders import ppocr_cls_model, ppocr_det_model, run_model, write_model
from edgeprune.analysis import analyze
from edgeprune.calibration import load_calibration
from edgeprune.cost import PlanCostModel, model_cost
from edgeprune.errors import InputError
from edgeprune.evaluate import compare
from edgeprune.graph import (
    dynamic_dims, fix_input_shapes, load_model, restore_dynamic_dims, shapes_from_calibration, with_input_shapes,
)
from edgeprune.hardware import LatencyModel, resolve_device
from edgeprune.hardware.layers import model_layers
from edgeprune.surgery import apply_plan, masked_model, simple_plan, verify

# name: (builder, the symbols of axes 2 and 3 as exported, calibration size)
PADDLE = {
    "cls-p2o": (lambda: ppocr_cls_model(), ("p2o.DynamicDimension.1", "p2o.DynamicDimension.2"), (48, 96)),
    "cls-minus1": (lambda: ppocr_cls_model((-1, 3, -1, -1)), ("-1", "-1"), (32, 64)),
    "det-p2o": (lambda: ppocr_det_model(), ("p2o.DynamicDimension.1", "p2o.DynamicDimension.2"), (32, 48)),
    "det-question": (lambda: ppocr_det_model(("?", 3, "?", "?")), ("?", "?"), (24, 40)),
    "det-minus1-text": (lambda: ppocr_det_model(("-1", 3, "-1", "-1")), ("-1", "-1"), (32, 32)),
}
TORCH = {"legacy": (r"height", r"width"), "dynamo": (r"s\d+", r"s\d+")}
ALL = [*PADDLE, *(f"torch-{e}" for e in TORCH)]


def _torch_detector(exporter: str, path):
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Detector(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8)
            self.c2, self.lat, self.head = nn.Conv2d(8, 8, 3, 2, 1), nn.Conv2d(8, 8, 1), nn.Conv2d(16, 1, 3, 1, 1)

        def forward(self, x):
            a = torch.relu(self.b1(self.c1(x)))
            b = torch.relu(self.c2(a))
            up = nn.functional.interpolate(self.lat(b), scale_factor=2.0, mode="nearest")
            return torch.sigmoid(self.head(torch.cat([a, up], 1)))

    torch.manual_seed(0)
    module, x = Detector().eval(), torch.randn(1, 3, 32, 48)
    if exporter == "legacy":
        torch.onnx.export(module, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"}, "y": {0: "batch"}})
    else:
        dim = torch.export.Dim.DYNAMIC
        program = torch.onnx.export(module, (x,), None, dynamo=True, input_names=["x"], output_names=["y"],
                                    dynamic_shapes=({0: dim, 2: dim, 3: dim},), external_data=False)
        onnx.save(program.model_proto, str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """name -> (path, calibration .npz of a concrete size); built once per module, on first use."""
    folder, cache = tmp_path_factory.mktemp("dynamic"), {}

    def get(name: str):
        if name not in cache:
            path = folder / f"{name}.onnx"
            if name.startswith("torch-"):
                _torch_detector(name.removeprefix("torch-"), path)
                size = (32, 48)
            else:
                write_model(PADDLE[name][0](), path)
                size = PADDLE[name][2]
            calib = folder / f"{name}.npz"
            np.savez(calib, x=np.random.default_rng(0).standard_normal((16, 3, *size)).astype(np.float32))
            cache[name] = (path, calib)
        return cache[name]

    return get


@pytest.mark.parametrize("name", ALL)
def test_dynamic_dims_are_named_as_exported(name, models):
    dims = dynamic_dims(load_model(models(name)[0]))
    assert [(d.input, d.axis) for d in dims] == [("x", 2), ("x", 3)]
    expected = TORCH[name.removeprefix("torch-")] if name.startswith("torch-") else map(re.escape, PADDLE[name][1])
    assert all(re.fullmatch(pattern, d.symbol) for pattern, d in zip(expected, dims)), dims


def test_the_two_reported_crashes_are_one_line_errors_and_gone_at_a_fixed_size(models):
    from edgeprune.capture.grams import capture_grams

    cls = load_model(models("cls-p2o")[0])  # was an IndexError in hardware/layers.py _spec
    with pytest.raises(InputError, match=r"axis 2 \('p2o.DynamicDimension.1'\).*--input-shape x=1,3,H,W"):
        LatencyModel(resolve_device("host"), cls, analyze(cls))
    sized = fix_input_shapes(cls, ["1,3,48,96"])
    assert [layer.node for layer in model_layers(sized, analyze(sized))] == ["conv1", "dw", "pw", "fc"]

    path, calib = models("det-p2o")  # was a ValueError in capture/grams.py parsing 'unk__0'
    det = load_model(path)
    assert any(isinstance(d, str) and d.startswith("unk__") for d in det.shapes["s1"])
    data = load_calibration(calib, det)
    with pytest.raises(InputError, match="capturing the refit statistics needs a concrete size"):
        capture_grams(det, analyze(det), data)
    sized = with_input_shapes(det, shapes_from_calibration(det, data))
    grams = capture_grams(sized, analyze(sized), data, batch_size=5)
    assert grams.images == 16 and grams.grams


def test_unknown_shapes_are_skipped_not_indexed(models):
    from dataclasses import replace
    from types import MappingProxyType

    sized = fix_input_shapes(load_model(models("cls-p2o")[0]), ["x=1,3,48,96"])
    blind = replace(sized, shapes=MappingProxyType({k: v for k, v in sized.shapes.items() if k not in ("flat", "fc")}))
    assert [layer.node for layer in model_layers(blind, analyze(sized))] == ["conv1", "dw", "pw"]


def _runtime_macs(model) -> int:
    """MACs counted from the shapes ONNX Runtime really produces (an independent check of the cost)."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    weights = {t.name: t for t in proto.graph.initializer}
    nodes = [n for n in proto.graph.node if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm")
             and n.input[1] in weights]
    names = sorted({n.input[0] for n in nodes} | {n.output[0] for n in nodes})
    proto.graph.output.extend(onnx.helper.make_tensor_value_info(n, 1, None) for n in names)
    feeds = {"x": np.zeros([d if isinstance(d, int) and d > 0 else 1 for d in model.shapes["x"]], np.float32)}
    shapes = dict(zip([o.name for o in proto.graph.output], (v.shape for v in run_model(proto, feeds))))
    total = 0
    for node in nodes:
        size = int(np.prod(weights[node.input[1]].dims))
        spatial = {"Conv": shapes[node.output[0]][2:], "ConvTranspose": shapes[node.input[0]][2:]}.get(node.op_type, ())
        total += size * int(np.prod(spatial))
    return total


@pytest.mark.parametrize("name", ALL)
def test_every_stage_runs_at_the_size_of_the_calibration_data(name, models):
    from edgeprune.reconstruct import reconstruct
    from edgeprune.scoring.measure import measure_and_score

    path, calib = models(name)
    model = load_model(path)
    data = load_calibration(calib, model)
    height, width = np.load(calib)["x"].shape[2:]
    sized = with_input_shapes(model, shapes_from_calibration(model, data))  # what optimize must call
    assert sized.shapes["x"][1:] == (3, height, width) and sized.shapes["x"][0] == model.shapes["x"][0]
    feeds = {"x": np.load(calib)["x"][:3]}
    got = run_model(sized.proto, feeds)[0]
    np.testing.assert_array_equal(got, run_model(model.proto, feeds)[0])  # fixing the size changes no value
    np.testing.assert_allclose(got, run_model(onnx.load(str(path)), feeds)[0], rtol=1e-5, atol=1e-6)
    analysis = analyze(sized)
    assert model_cost(sized).macs == _runtime_macs(sized)
    latency = LatencyModel(resolve_device("host"), sized, analysis)
    weighted = [n.name for n in sized.proto.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    assert [layer.node for layer in latency.layers] == weighted and latency.predict_full() > 0
    assert f"|in3@{height}x{width}|" in latency.layers[0].key  # priced at the calibration size
    fit, held = data.split(0.25, seed=0)
    scores, _ = measure_and_score(sized, analysis, fit, "refit-error", batch_size=5)
    assert set(scores) == {g.id for g in analysis.prunable_groups}
    assert all(np.isfinite(s.scores).all() for s in scores.values())
    assert not scores[analysis.prunable_groups[0].id].fallback  # the first conv's group: refit-error itself
    plan = simple_plan(analysis, 0.5, random=True, seed=1)
    pruned = apply_plan(sized, analysis, plan)
    assert verify(sized, analysis, plan, pruned).passed
    assert model_cost(pruned).macs == PlanCostModel(sized, analysis).cost_of_plan(plan.kept).macs
    final, refit = reconstruct(sized, pruned, analysis, plan, fit, batch_size=5)
    assert refit.layers
    judged = compare(sized, final, held, batch_size=5)
    assert judged.images == held.count and np.isfinite(judged.output_error)
    _check_restored_runs_at_other_sizes(model, sized, analysis, plan, pruned, (height + 8, width + 16))


def _check_restored_runs_at_other_sizes(model, sized, analysis, plan, pruned, size) -> None:
    """The file to write keeps the original's dynamic dims and equals the masked original at another size."""
    restored = restore_dynamic_dims(pruned, model)
    assert [tuple(i.type.tensor_type.shape.dim) for i in restored.proto.graph.input] == \
        [tuple(i.type.tensor_type.shape.dim) for i in model.proto.graph.input]
    reference = restore_dynamic_dims(masked_model(sized, analysis, analysis.keep_mask(plan.kept)), model)
    feeds = {"x": np.random.default_rng(3).standard_normal((2, 3, *size)).astype(np.float32)}
    expected, got = run_model(reference.proto, feeds)[0], run_model(restored.proto, feeds)[0]
    assert got.shape == expected.shape and np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


@pytest.mark.parametrize("specs, words", [
    (["y=1,3,32,32"], "names input 'y', which the model does not have (its inputs: x)"),
    (["x=1,3,32"], "has 3 dimensions but input 'x' has 4"),
    (["x=1,4,32,32"], "changes axis 1 of input 'x' from 3 to 4"),
    (["x=1,3,0,32"], "sizes must be positive integers, got 0 on axis 2"),
    (["x=1,3,-32,32"], "sizes must be positive integers, got -32 on axis 2"),
    (["x=1,3,32.5,32"], "'32.5' is not an integer"),
    (["x=1,3,32,32", "x=1,3,64,64"], "gives input 'x' twice"),
])
def test_bad_input_shapes_are_refused_naming_what_is_wrong(specs, words, models):
    model = load_model(models("det-p2o")[0])
    with pytest.raises(InputError, match=re.escape(words)):
        fix_input_shapes(model, specs)


def test_a_size_too_small_for_the_model_is_refused(tmp_path):
    from onnx import helper

    from builders import init, make_model, tensor_info

    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", strides=[2, 2]),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    proto = make_model(nodes, [tensor_info("x", ["N", 3, "H", "W"])], [tensor_info("y", ["N", 4, "h", "w"])],
                       [init("w", np.ones((4, 3, 5, 5), np.float32))])
    model = load_model(write_model(proto, tmp_path / "k5.onnx"))
    assert fix_input_shapes(model, ["1,3,5,5"]).shapes["y"] == (1, 4, 1, 1)
    with pytest.raises(InputError, match=r"^at the input size x=1,3,3,3, Conv conv would output 1x4x0x0 \(an empty"):
        fix_input_shapes(model, ["1,3,3,3"])


def test_the_bare_form_needs_a_single_input():
    from edgeprune.graph.shapes import parse_input_shapes

    assert parse_input_shapes(["1,3,8,8"], {"x": ("N", 3, "H", "W")}) == {"x": (1, 3, 8, 8)}
    with pytest.raises(InputError, match=r"names no input, but the model has 2 inputs \(a, b\); write NAME=1,3,8,8"):
        parse_input_shapes(["1,3,8,8"], {"a": ("N", 3, "H", "W"), "b": ("N", 3, "H", "W")})


def test_a_static_model_is_left_as_it_is(tmp_path):
    from builders import conv_bn_relu_model

    model = load_model(write_model(conv_bn_relu_model(batch="N"), tmp_path / "static.onnx"))
    assert not dynamic_dims(model) and fix_input_shapes(model, ()) is model
    assert restore_dynamic_dims(model, model) is model
    assert fix_input_shapes(model, ["x=4,3,8,8"]).shapes["y"] == (4, 4, 8, 8)


# -- the command line -----------------------------------------------------------------------------------------

def test_inspect_names_the_dynamic_dims_and_computes_no_cost_without_a_size(capsys, models):
    import json

    from cli_runner import run

    path = models("det-p2o")[0]
    code, out, err = run(capsys, "inspect", path)
    assert code == 0, err
    assert "dynamic input 'x': axis 2 ('p2o.DynamicDimension.1'), axis 3 ('p2o.DynamicDimension.2')" in out
    assert "give it with --input-shape x=1,3,H,W" in out and "MACs" not in out and "prunable" in out
    code, out, _ = run(capsys, "inspect", path, "--json")
    description = json.loads(out)
    assert code == 0 and description["cost"] is None and description["groups"]
    assert description["dynamic"] == [{"input": "x", "axis": 2, "symbol": "p2o.DynamicDimension.1"},
                                      {"input": "x", "axis": 3, "symbol": "p2o.DynamicDimension.2"}]
    code, out, _ = run(capsys, "inspect", path, "--json", "--input-shape", "x=1,3,64,96")
    description = json.loads(out)
    expected = model_cost(fix_input_shapes(load_model(path), ["x=1,3,64,96"])).macs
    assert code == 0 and description["cost"]["macs"] == expected > 0 and description["dynamic"] == []
    assert description["input_shapes"] == {"x": [1, 3, 64, 96]} and description["inputs"][0]["shape"] == [1, 3, 64, 96]
    code, out, _ = run(capsys, "inspect", path, "--input-shape", "1,3,64,96")
    assert code == 0 and "MACs" in out and "per image at x=1,3,64,96" in out


def test_plan_and_prune_at_a_given_size_write_a_model_that_stays_dynamic(capsys, tmp_path, models):
    from cli_runner import run

    path = models("det-p2o")[0]
    plan, out = tmp_path / "plan.json", tmp_path / "pruned.onnx"
    code, _, err = run(capsys, "plan", path, "--ratio", 0.5, "--input-shape", "x=1,3,32,48", "-o", plan)
    assert code == 0, err
    code, _, err = run(capsys, "prune", path, "--plan", plan, "-o", out)
    assert code == 2 and "--input-shape x=1,3,H,W" in err and err.count("\n") == 1 and not out.exists()
    code, text, err = run(capsys, "prune", path, "--plan", plan, "--input-shape", "x=1,3,32,48", "-o", out)
    assert code == 0 and "matches the masked original" in text, err
    written = onnx.load(str(out))
    assert written.graph.input[0].type == onnx.load(str(path)).graph.input[0].type  # still dynamic
    for size in ((32, 48), (56, 40)):
        result = run_model(written, {"x": np.zeros((2, 3, *size), np.float32)})[0]
        assert result.shape == (2, 1, *size)


@pytest.mark.parametrize("spec, words", [
    ("y=1,3,32,32", "names input 'y', which the model does not have"),
    ("x=1,3,32", "has 3 dimensions but input 'x' has 4"),
    ("x=2,4,32,32", "changes axis 1 of input 'x' from 3 to 4"),
    ("x=1,3,0,32", "sizes must be positive integers"),
    ("x=1,3,-1,32", "sizes must be positive integers"),
    ("x=1,3,h,32", "'h' is not an integer"),
])
@pytest.mark.parametrize("command", ["inspect", "plan", "prune", "bench", "profile"])
def test_a_bad_input_shape_is_one_line_exit_2_and_nothing_written(capsys, tmp_path, models, command, spec, words):
    from cli_runner import run

    path = models("det-p2o")[0]
    out = tmp_path / "out"
    plan = tmp_path / "plan.json"
    simple_plan(analyze(load_model(path)), 1.0).save(plan)
    args = {"inspect": ["inspect", path], "plan": ["plan", path, "--ratio", 0.5, "-o", out],
            "prune": ["prune", path, "--plan", plan, "-o", out], "bench": ["bench", path, "--repeats", 1],
            "profile": ["profile", "--device", "host", "--model", path, "-o", out]}[command]
    code, _, err = run(capsys, *args, "--input-shape", spec)
    assert code == 2 and words in err and err.count("\n") == 1, err
    assert not out.exists()


def test_bench_and_profile_time_the_model_at_the_given_size(capsys, tmp_path, models):
    import json

    from cli_runner import run
    from edgeprune.hardware import load_profile

    path = models("cls-p2o")[0]
    code, _, err = run(capsys, "bench", path, "--repeats", 2)
    assert code == 2 and "timing the model needs a concrete size; give it with --input-shape x=1,3,H,W" in err
    code, out, err = run(capsys, "bench", path, "--vs", path, "--repeats", 2, "--warmup", 0, "--json",
                         "--input-shape", "x=2,3,48,96")
    assert code == 0 and json.loads(out)["input_shapes"] == {"x": [2, 3, 48, 96]}, err
    code, _, err = run(capsys, "profile", "--device", "host", "--model", path, "-o", tmp_path / "p.toml")
    assert code == 2 and "profiling its layers needs a concrete size" in err and not (tmp_path / "p.toml").exists()
    code, _, err = run(capsys, "profile", "--device", "host", "--model", path, "--input-shape", "1,3,48,96",
                       "--points", 1, "--seconds-per-point", 0.002, "-o", tmp_path / "p.toml")
    assert code == 0, err
    profile = load_profile(tmp_path / "p.toml")
    assert "Conv|b1|in3@48x96|out8|" in "\n".join(profile.layers)
    assert [m.input_shape for m in profile.models.values()] == ["x=1,3,48,96"]


@pytest.mark.parametrize("name", ALL)
def test_optimize_takes_the_size_from_the_calibration_data_and_writes_a_dynamic_model(capsys, tmp_path, name, models):
    from cli_runner import run

    path, calib = models(name)
    height, width = np.load(calib)["x"].shape[2:]
    out = tmp_path / "run"
    code, _, err = run(capsys, "optimize", path, "--calib", calib, "--target-flops", "0.7", "--align", 1,
                       "--batch-size", 4, "--latency-rounds", 0, "--out", out)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["input_shapes"]["x"][1:] == [3, height, width]
    assert report["verification"]["passed"] and report["cost_after"]["macs"] <= 0.7 * report["cost_before"]["macs"]
    assert report["latency"]["predicted_ms_before"] > 0 and report["comparison_reconstructed"]["images"] == report["model"]["calibration"]["held_out"]
    written = load_model(out / "model.pruned.onnx")
    assert [(d.input, d.axis) for d in dynamic_dims(written)] == [("x", 2), ("x", 3)]  # still runs at every size
    feeds = {"x": np.random.default_rng(1).standard_normal((2, 3, height + 8, width + 16)).astype(np.float32)}
    assert np.isfinite(run_model(written.proto, feeds)[0]).all()
