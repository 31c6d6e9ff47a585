"""optimize on non-classifiers: the report judges each by its task's measure, and the goal and guard use it."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cli_runner import run


def _model(kind: str, seed: int = 0) -> onnx.ModelProto:
    """Two convs with a prunable hidden layer of 12 channels, then the task's head."""
    rng = np.random.default_rng(seed)
    height, width, hidden = (1, 24, 12) if kind == "sequence" else (16, 16, 12)
    out_channels = {"segment": 5, "detect-map": 1, "sequence": 7}[kind]
    kernel = [1, 3] if kind == "sequence" else [3, 3]
    pads = [0, 1, 0, 1] if kind == "sequence" else [1, 1, 1, 1]
    inits = [
        numpy_helper.from_array((rng.standard_normal((hidden, 3, *kernel)) * 0.4).astype(np.float32), "w1"),
        numpy_helper.from_array((rng.standard_normal(hidden) * 0.1).astype(np.float32), "b1"),
        numpy_helper.from_array((rng.standard_normal((out_channels, hidden, *kernel)) * 0.3).astype(np.float32), "w2"),
        numpy_helper.from_array((rng.standard_normal(out_channels) * 0.1).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["h"], pads=pads, kernel_shape=kernel),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Conv", ["r", "w2", "b2"], ["c"], pads=pads, kernel_shape=kernel),
    ]
    if kind == "segment":
        nodes.append(helper.make_node("Identity", ["c"], ["y"]))
        shape = [None, out_channels, height, width]
    elif kind == "detect-map":
        nodes.append(helper.make_node("Sigmoid", ["c"], ["y"]))
        shape = [None, 1, height, width]
    else:
        inits.append(numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"))
        nodes += [
            helper.make_node("Squeeze", ["c", "axis2"], ["s"]),
            helper.make_node("Transpose", ["s"], ["y"], perm=[0, 2, 1]),
        ]
        shape = [None, width, out_channels]
    graph = helper.make_graph(
        nodes,
        kind,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, height, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def task_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")

    def build(kind: str):
        model = _model(kind)
        path = folder / f"{kind}.onnx"
        onnx.save(model, path)
        height, width = (1, 24) if kind == "sequence" else (16, 16)
        calib = folder / f"{kind}.npz"
        np.savez(calib, x=np.random.default_rng(3).standard_normal((40, 3, height, width)).astype(np.float32))
        return path, calib

    return build


@pytest.mark.parametrize(
    "kind,measure,measures",
    [
        ("segment", "miou", {"miou", "pixel-agreement"}),
        ("detect-map", "iou", {"iou", "f1", "pixel-agreement"}),
        ("sequence", "sequence-match", {"sequence-match", "step-agreement"}),
    ],
)
def test_the_report_judges_each_output_kind_by_its_task(capsys, tmp_path, task_model, kind, measure, measures):
    path, calib = task_model(kind)
    out = tmp_path / "run"
    code, stdout, err = run(
        capsys,
        "optimize",
        path,
        "--calib",
        calib,
        "--target-flops",
        "0.7",
        "--align",
        1,
        "--batch-size",
        8,
        "--latency-rounds",
        0,
        "--out",
        out,
        "--json",
    )
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    judged = report["comparison_reconstructed"]
    assert judged["task"] == kind and judged["measure"] == measure and measures <= set(judged["measures"])
    assert judged["drop_points"] == pytest.approx(100 * (1 - judged["measures"][measure]))
    assert report["comparison_pruned"]["task"] == kind and judged["agreement"] is None
    assert json.loads(stdout)["measure"] == measure


def test_the_guard_and_the_goal_use_the_task_measure(capsys, tmp_path, task_model):
    path, calib = task_model("segment")
    args = ("optimize", path, "--calib", calib, "--align", 1, "--batch-size", 8, "--latency-rounds", 0)
    code, _, err = run(
        capsys, *args, "--target-flops", "0.3", "--max-acc-drop", 0, "--no-reconstruct", "--out", tmp_path / "guard"
    )
    assert code == 1 and "held-out miou fell by" in err, err
    code, _, err = run(capsys, *args, "--max-acc-drop", 60, "--out", tmp_path / "goal")
    assert code == 0, err
    goal = json.loads((tmp_path / "goal" / "report.json").read_text())["goal"]
    assert goal["measure"] == "miou" and goal["candidates"][goal["chosen"]]["drop_points"] <= 60
    code, _, err = run(capsys, *args, "--target-flops", "0.7", "--task", "classify", "--out", tmp_path / "bad")
    assert code == 2 and "does not fit" in err and not (tmp_path / "bad").exists()
