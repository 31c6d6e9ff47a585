"""One layer alone as an ONNX model, at chosen channel counts: what the profiler times.

Only onnx.helper and numpy: the profiler runs on the device, where torch is not wanted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeprune.graph.model import MAX_IR_VERSION
from edgeprune.hardware.layers import LayerSpec

OPSET = 13


def layer_model(layer: LayerSpec, cin: int, cout: int, seed: int = 0) -> bytes:
    """``layer`` with ``cin`` inputs and ``cout`` outputs (a depthwise layer: ``cout`` channels, as many groups)."""
    rng = np.random.default_rng(seed)
    attrs: dict[str, Any] = dict(layer.attributes)
    if layer.op == "Conv":
        group = cout if layer.depthwise else layer.group
        cin = cout if layer.depthwise else cin
        attrs["group"] = group
        x_shape = [layer.batch, cin, *layer.in_hw]
        weight = rng.standard_normal((cout, cin // group, *layer.kernel)).astype(np.float32) * 0.1
    elif layer.op == "Gemm":
        x_shape = [layer.batch, cin]
        shape = (cout, cin) if attrs.get("transB", 0) else (cin, cout)
        weight = rng.standard_normal(shape).astype(np.float32) * 0.1
    else:  # MatMul
        x_shape = [layer.batch, cin]
        weight = rng.standard_normal((cin, cout)).astype(np.float32) * 0.1
    inits = [numpy_helper.from_array(weight, "w")]
    inputs = ["x", "w"]
    if layer.has_bias and layer.op != "MatMul":
        inits.append(numpy_helper.from_array(np.zeros(cout, dtype=np.float32), "b"))
        inputs.append("b")
    node = helper.make_node(layer.op, inputs, ["y"], **attrs)
    graph = helper.make_graph(
        [node],
        "layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * len(x_shape))],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=MAX_IR_VERSION)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def sample_counts(full: int, step: int, points: int, prunable: bool) -> tuple[int, ...]:
    """Counts on the ``step`` grid from one step up to ``full`` (always included), ``points`` of them at most;
    a layer whose side cannot be pruned is measured at its full count only."""
    if not prunable or full <= step or points <= 1:
        return (full,)
    wanted = np.linspace(step, full, points)
    counts = {min(full, int(np.ceil(w / step - 1e-9)) * step) for w in wanted}
    return tuple(sorted(counts | {full}))
