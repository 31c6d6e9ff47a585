"""One small graph per op of the channel table that the corpus does not reach: prune it, prove it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_graphsurgeon.logger import G_LOGGER

from edgeprune.analysis import analyze
from edgeprune.cost import PlanCostModel, model_cost
from edgeprune.graph import normalize_proto
from edgeprune.surgery import PruningPlan, apply_plan, random_inputs, verify

G_LOGGER.severity = G_LOGGER.ERROR
RNG = np.random.default_rng(0)


def _w(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array((RNG.standard_normal(shape) / np.sqrt(np.prod(shape[1:]) or 1)).astype(np.float32), name)


def _model(middle: list, extra_inits: list, opset: int = 17, head: str = "conv", x_shape=(2, 3, 8, 8)):
    """x -> conv 3->8 ("a", tensor "t") -> middle nodes reading "t" and writing "u" -> head -> y."""
    nodes = [helper.make_node("Conv", ["x", "wa", "ba"], ["t"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="a")]
    nodes += middle
    inits = [_w("wa", 8, 3, 3, 3), _w("ba", 8)] + extra_inits
    if head == "conv":
        nodes.append(helper.make_node("Conv", ["u", "wb", "bb"], ["y"], kernel_shape=[1, 1], name="b"))
        inits += [_w("wb", 4, 8, 1, 1), _w("bb", 4)]
    elif head == "matmul":
        nodes += [helper.make_node("GlobalAveragePool", ["u"], ["g"], name="gap"),
                  helper.make_node("Flatten", ["g"], ["f"], name="flat"),
                  helper.make_node("MatMul", ["f", "wm"], ["y"], name="fc")]
        inits.append(_w("wm", 8, 5))
    graph = helper.make_graph(nodes, "op", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return normalize_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8))


def _unary(op: str, **attrs):
    return [helper.make_node(op, ["t"], ["u"], name="mid", **attrs)], []


CASES = {
    "ConvTranspose": ([helper.make_node("ConvTranspose", ["t", "wt", "bt"], ["u"], kernel_shape=[2, 2], strides=[2, 2],
                                        name="mid")], [_w("wt", 8, 8, 2, 2), _w("bt", 8)]),
    "InstanceNormalization": ([helper.make_node("InstanceNormalization", ["t", "s", "c"], ["u"], name="mid")],
                              [numpy_helper.from_array(RNG.uniform(0.5, 1.5, 8).astype(np.float32), "s"), _w("c", 8)]),
    "GlobalMaxPool": ([helper.make_node("GlobalMaxPool", ["t"], ["u"], name="mid")], []),
    "MaxPool": ([helper.make_node("MaxPool", ["t"], ["u"], kernel_shape=[2, 2], strides=[2, 2], name="mid")], []),
    "Gelu": ([helper.make_node("Gelu", ["t"], ["u"], name="mid")], []),
    "Elu": _unary("Elu"),
    "Softplus": _unary("Softplus"),
    "Tanh": _unary("Tanh"),
    "Identity": _unary("Identity"),
    "Cast": _unary("Cast", to=TensorProto.FLOAT),
    "Dropout": _unary("Dropout"),
    "PRelu": ([helper.make_node("PRelu", ["t", "slope"], ["u"], name="mid")],
              [numpy_helper.from_array(RNG.uniform(0.1, 0.3, (8, 1, 1)).astype(np.float32), "slope")]),
    "ReduceMax": ([helper.make_node("ReduceMax", ["t", "axes"], ["u"], keepdims=1, name="mid")],
                  [numpy_helper.from_array(np.array([2, 3], np.int64), "axes")]),
    "Resize": ([helper.make_node("Resize", ["t", "", "sc"], ["u"], mode="nearest", name="mid")],
               [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")]),
}


@pytest.mark.parametrize("op", sorted(CASES))
def test_op_prunes_with_proof(op):
    middle, inits = CASES[op]
    opset = 20 if op == "Gelu" else 18
    model = _model(middle, inits, opset=opset)
    _prune_and_prove(model, op)


def test_upsample_in_an_old_opset():
    middle = [helper.make_node("Upsample", ["t", "sc"], ["u"], mode="nearest", name="mid")]
    model = _model(middle, [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")], opset=9)
    _prune_and_prove(model, "Upsample")


def test_matmul_head_after_global_pooling():
    model = _model([helper.make_node("Relu", ["t"], ["u"], name="mid")], [], head="matmul")
    _prune_and_prove(model, "MatMul")


def _prune_and_prove(model, op: str) -> None:
    analysis = analyze(model)
    group = next(g for g in analysis.groups if "a" in g.producers)
    assert group.prunable, (op, [str(r) for r in group.frozen])
    plan = PruningPlan(model_sha256=analysis.model_sha256, kept={group.id: (0, 3, 5, 6)})
    pruned = apply_plan(model, analysis, plan)
    proof = verify(model, analysis, plan, pruned, feeds=random_inputs(model, batch=2, seed=1))
    assert proof.passed, (op, proof.to_dict())
    assert model_cost(pruned).macs == PlanCostModel(model, analysis).cost_of_plan(plan.kept).macs < model_cost(model).macs


@pytest.mark.parametrize("op,attrs,reason", [
    ("LRN", {"size": 3}, "normalises across channels"),
    ("Softmax", {"axis": 1}, "normalises across channels"),
    ("DepthToSpace", {"blocksize": 2}, "block"),
    ("Hardmax", {"axis": 1}, "normalises across channels"),
])
def test_cross_channel_ops_freeze_with_a_reason(op, attrs, reason):
    head = helper.make_node("Relu", ["u"], ["y"], name="head")
    nodes = [helper.make_node("Conv", ["x", "wa", "ba"], ["t"], kernel_shape=[1, 1], name="a"),
             helper.make_node(op, ["t"], ["u"], name="mid", **attrs), head]
    graph = helper.make_graph(nodes, "freeze", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [_w("wa", 8, 3, 1, 1), _w("ba", 8)])
    model = normalize_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
    group = next(g for g in analyze(model).groups if "a" in g.producers)
    assert not group.prunable
    assert any(r.node == "mid" and r.op == op and reason in r.reason for r in group.frozen)


def test_an_op_outside_the_table_freezes_and_says_so():
    nodes = [helper.make_node("Conv", ["x", "wa", "ba"], ["t"], kernel_shape=[1, 1], name="a"),
             helper.make_node("CumSum", ["t", "ax"], ["u"], name="mid"),
             helper.make_node("Conv", ["u", "wb"], ["y"], kernel_shape=[1, 1], name="b")]
    graph = helper.make_graph(nodes, "unknown", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [_w("wa", 8, 3, 1, 1), _w("ba", 8), _w("wb", 4, 8, 1, 1),
                               numpy_helper.from_array(np.array(1, np.int64), "ax")])
    model = normalize_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
    group = next(g for g in analyze(model).groups if "a" in g.producers)
    assert [str(r) for r in group.frozen] == ["mid (CumSum): op CumSum is not in the channel-semantics table"]
