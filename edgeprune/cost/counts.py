"""Cost of a model as it stands: MACs, FLOPs, parameters, weight bytes and peak activation memory.

MACs count multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul (the ops that dominate a CNN);
FLOPs are reported as 2 x MACs. Activation memory is per image (a dynamic batch counts as 1), over
the model's topological order, with a tensor alive from its producer to its last consumer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgeprune.graph.model import ModelGraph
from edgeprune.graph.shapes import require_concrete


@dataclass(frozen=True)
class NodeCost:
    name: str
    op: str
    macs: int
    params: int
    weight_bytes: int


@dataclass(frozen=True)
class CostSummary:
    macs: int
    params: int
    weight_bytes: int
    peak_activation_bytes: int
    nodes: tuple[NodeCost, ...] = ()

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_dict(self, with_nodes: bool = False) -> dict:
        data: dict[str, object] = {
            "macs": self.macs,
            "flops": self.flops,
            "params": self.params,
            "weight_bytes": self.weight_bytes,
            "peak_activation_bytes": self.peak_activation_bytes,
        }
        if with_nodes:
            data["nodes"] = [n.__dict__ for n in self.nodes if n.macs or n.params]
        return data


def per_image(shape) -> int:
    return int(math.prod(d if isinstance(d, int) and d > 0 else 1 for d in shape))


def node_macs(op: str, weight_shape: tuple[int, ...], in_shape, out_shape) -> int:
    """MACs of one image through a weighted node, from its weight and activation shapes."""
    weight = math.prod(weight_shape)
    if op == "Conv":
        return weight * per_image(out_shape[2:])
    if op == "ConvTranspose":
        return weight * per_image(in_shape[2:])
    if op == "Gemm":
        return weight
    if op == "MatMul":
        return weight * per_image(in_shape[1:-1]) if len(in_shape) > 2 else weight
    return 0


WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def model_cost(model: ModelGraph) -> CostSummary:
    """The model's cost per image at its input size; a dynamic height or width is refused rather than
    counted as 1 (fix the size with `with_input_shapes`)."""
    require_concrete(model, "a cost (MACs, activation memory)")
    graph = model.proto.graph
    initializers = {t.name: t for t in graph.initializer}
    counted: set[str] = set()
    nodes = []
    for node in graph.node:
        params = weight_bytes = 0
        for name in node.input:
            init = initializers.get(name)
            if init is None or name in counted or not _is_float(init.data_type):
                continue
            counted.add(name)
            size = math.prod(init.dims)
            params += size
            weight_bytes += size * _itemsize(init.data_type)
        macs = 0
        if node.op_type in WEIGHTED_OPS and len(node.input) > 1 and node.input[1] in initializers:
            macs = node_macs(
                node.op_type,
                tuple(initializers[node.input[1]].dims),
                model.shapes.get(node.input[0], ()),
                model.shapes.get(node.output[0], ()),
            )
        nodes.append(NodeCost(node.name, node.op_type, macs, params, weight_bytes))
    return CostSummary(
        macs=sum(n.macs for n in nodes),
        params=sum(n.params for n in nodes),
        weight_bytes=sum(n.weight_bytes for n in nodes),
        peak_activation_bytes=peak_activation_bytes(model, activation_sizes(model)),
        nodes=tuple(nodes),
    )


def activation_sizes(model: ModelGraph) -> dict[str, int]:
    """Bytes per image of every non-constant tensor with a known shape."""
    initializers = {t.name for t in model.proto.graph.initializer}
    sizes = {}
    for name, shape in model.shapes.items():
        if name in initializers:
            continue
        dtype = model.dtypes.get(name, np.dtype(np.float32))
        sizes[name] = per_image(shape) * np.dtype(dtype).itemsize
    return sizes


def liveness(model: ModelGraph) -> list[list[str]]:
    """For each step of the topological order, the tensors alive while that node runs."""
    graph = model.proto.graph
    last_use: dict[str, int] = {}
    for step, node in enumerate(graph.node):
        for name in node.input:
            last_use[name] = step
    for output in graph.output:
        last_use[output.name] = len(graph.node)
    alive = set(model.input_names)
    steps = []
    for step, node in enumerate(graph.node):
        alive.update(o for o in node.output if o)
        steps.append(sorted(alive))
        alive = {name for name in alive if last_use.get(name, -1) > step}
    return steps


def peak_activation_bytes(model: ModelGraph, sizes: dict[str, int]) -> int:
    return max((sum(sizes.get(name, 0) for name in step) for step in liveness(model)), default=0)


def _is_float(data_type: int) -> bool:
    import onnx

    return data_type in (
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.DOUBLE,
        onnx.TensorProto.BFLOAT16,
    )


def _itemsize(data_type: int) -> int:
    import onnx

    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(data_type)).itemsize
