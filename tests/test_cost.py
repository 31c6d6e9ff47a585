"""Cost counts against hand-computed values."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeprune.analysis import analyze
from edgeprune.cost import PlanCostModel, model_cost
from edgeprune.graph import normalize_proto
from edgeprune.surgery import PruningPlan, apply_plan


def _tiny_model() -> onnx.ModelProto:
    """input 1x3x8x8 -> conv 3->8 k3 p1 -> relu -> depthwise 8 k3 p1 s2 -> GAP -> flatten -> gemm 8->10."""
    rng = np.random.default_rng(0)

    def init(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2],
                         group=8, name="dw"),
        helper.make_node("GlobalAveragePool", ["c2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [init("w1", 8, 3, 3, 3), init("b1", 8), init("w2", 8, 1, 3, 3), init("b2", 8), init("w3", 10, 8), init("b3", 10)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def test_counts_match_hand_computed_values():
    model = normalize_proto(_tiny_model())
    cost = model_cost(model)
    by_name = {n.name: n for n in cost.nodes}
    assert by_name["conv1"].macs == 3 * 8 * 3 * 3 * 8 * 8  # C_in x C_out x k x k x H_out x W_out
    assert by_name["dw"].macs == 1 * 8 * 3 * 3 * 4 * 4  # C_in/groups = 1, stride 2 -> 4x4
    assert by_name["fc"].macs == 8 * 10
    assert cost.macs == 13824 + 1152 + 80 and cost.flops == 2 * cost.macs
    assert by_name["conv1"].params == 8 * 3 * 9 + 8
    assert by_name["dw"].params == 8 * 9 + 8
    assert cost.params == 224 + 80 + 90 and cost.weight_bytes == 4 * cost.params
    # conv1 holds x and c1 (192 + 512 floats); relu1 then holds c1 and r1 (512 + 512): the peak
    assert cost.peak_activation_bytes == 4 * (8 * 64 + 8 * 64)


def test_plan_cost_and_pruned_counts_agree_by_hand():
    model = normalize_proto(_tiny_model())
    analysis = analyze(model)
    group = next(g for g in analysis.prunable_groups if "conv1" in g.producers)
    assert group.channels == 8 and "dw" not in group.producers  # the depthwise conv passes channels through
    plan = PruningPlan(model_sha256=analysis.model_sha256, kept={group.id: (0, 2, 5)})
    pruned = model_cost(apply_plan(model, analysis, plan))
    assert pruned.macs == 3 * 3 * 9 * 64 + 3 * 9 * 16 + 3 * 10
    assert pruned.params == (3 * 3 * 9 + 3) + (3 * 9 + 3) + (3 * 10 + 10)
    assert PlanCostModel(model, analysis).cost_of_plan(plan.kept).macs == pruned.macs
