"""Gemm and MatMul with stored weights: fully connected layers, fed by flattened or pooled features."""

from __future__ import annotations

from edgeprune.ops.common import Unsupported
from edgeprune.ops.registry import OpRule, op_rule


@op_rule("Gemm")
class GemmRule(OpRule):
    def propagate(self, node, ctx) -> None:
        weight = ctx.constant(node.inputs[1])
        if weight is None:
            raise Unsupported("its weights are computed at run time, not stored in the model")
        if int(node.attrs.get("transA", 0)):
            raise Unsupported("transA=1 is not supported")
        bias = ctx.constant(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2].name else None
        if len(node.inputs) > 2 and node.inputs[2].name and bias is None:
            raise Unsupported("its bias is computed at run time")
        in_axis, out_axis = (1, 0) if int(node.attrs.get("transB", 0)) else (0, 1)
        features = weight.shape[out_axis]
        x, out = node.inputs[0], node.outputs[0]
        track = ctx.track(x)
        if track is not None:
            if track.axis != 1:
                raise Unsupported("its input's feature axis is not axis 1")
            ctx.reduce(node, x)
            ctx.slice_with(node, 1, in_axis, x)
        ctx.new_space(node.name, out, 1, features)
        ctx.slice_with(node, 1, out_axis, out)
        if bias is not None and bias.ndim >= 1 and bias.shape[-1] == features and features > 1:
            ctx.slice_with(node, 2, bias.ndim - 1, out)


@op_rule("MatMul")
class MatMulRule(OpRule):
    def propagate(self, node, ctx) -> None:
        weight = ctx.constant(node.inputs[1])
        if weight is None or weight.ndim != 2:
            raise Unsupported("only a matrix product with a stored 2-D weight is supported")
        x, out = node.inputs[0], node.outputs[0]
        track = ctx.track(x)
        shape = ctx.shape(x)
        if shape is None:
            raise Unsupported("the rank of its input is unknown")
        if track is not None:
            if track.axis != len(shape) - 1:
                raise Unsupported("its input's channels are not on the last axis")
            ctx.reduce(node, x)
            ctx.slice_with(node, 1, 0, x)
        ctx.new_space(node.name, out, len(shape) - 1, weight.shape[1])
        ctx.slice_with(node, 1, 1, out)
