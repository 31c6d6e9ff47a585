"""Kernels of the channel-wise ops: activations, casts, comparisons and broadcasting arithmetic."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from edgeprune.train.kernels.registry import NodeSpec, kernel

_SELU_ALPHA, _SELU_GAMMA = 1.67326319217681884765625, 1.05070102214813232421875

_UNARY: dict[str, Callable] = {
    "Relu": torch.relu,
    "Sigmoid": torch.sigmoid,
    "Tanh": torch.tanh,
    "Softsign": F.softsign,
    "Neg": torch.neg,
    "Abs": torch.abs,
    "Exp": torch.exp,
    "Log": torch.log,
    "Sqrt": torch.sqrt,
    "Reciprocal": torch.reciprocal,
    "Erf": torch.erf,
    "Floor": torch.floor,
    "Ceil": torch.ceil,
    "Round": torch.round,
    "Sign": torch.sign,
    "Sin": torch.sin,
    "Cos": torch.cos,
    "Not": torch.logical_not,
    "HardSwish": F.hardswish,
    "Mish": F.mish,
    "Softplus": F.softplus,
}


@kernel(*_UNARY)
def unary(node: NodeSpec, inputs):
    return [_UNARY[node.op](inputs[0])]


@kernel("Identity")
def identity(node: NodeSpec, inputs):
    return [inputs[0]]


@kernel("Dropout", static=(1, 2))
def dropout(node: NodeSpec, inputs):
    """Inference semantics: the executor reproduces the exported graph, where dropout is off."""
    x = inputs[0]
    return [x, torch.ones_like(x, dtype=torch.bool)]


@kernel("LeakyRelu")
def leaky_relu(node: NodeSpec, inputs):
    return [F.leaky_relu(inputs[0], float(node.attr("alpha", 0.01)))]


@kernel("Elu")
def elu(node: NodeSpec, inputs):
    return [F.elu(inputs[0], float(node.attr("alpha", 1.0)))]


@kernel("Celu")
def celu(node: NodeSpec, inputs):
    return [F.celu(inputs[0], float(node.attr("alpha", 1.0)))]


@kernel("Selu")
def selu(node: NodeSpec, inputs):
    x = inputs[0]
    alpha, gamma = float(node.attr("alpha", _SELU_ALPHA)), float(node.attr("gamma", _SELU_GAMMA))
    return [gamma * torch.where(x > 0, x, alpha * (torch.exp(x) - 1))]


@kernel("ThresholdedRelu")
def thresholded_relu(node: NodeSpec, inputs):
    x = inputs[0]
    return [torch.where(x > float(node.attr("alpha", 1.0)), x, torch.zeros_like(x))]


@kernel("HardSigmoid")
def hard_sigmoid(node: NodeSpec, inputs):
    alpha, beta = float(node.attr("alpha", 0.2)), float(node.attr("beta", 0.5))
    return [torch.clamp(alpha * inputs[0] + beta, 0.0, 1.0)]


@kernel("Gelu")
def gelu(node: NodeSpec, inputs):
    approximate = node.attr("approximate", "none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    return [F.gelu(inputs[0], approximate=approximate)]


@kernel("Clip", static=(1, 2))
def clip(node: NodeSpec, inputs):
    x = inputs[0]
    if node.opset < 11:
        low, high = node.attr("min", -math.inf), node.attr("max", math.inf)
    else:
        low = inputs[1].item() if len(inputs) > 1 and inputs[1] is not None else None
        high = inputs[2].item() if len(inputs) > 2 and inputs[2] is not None else None
    return [torch.clamp(x, low, high)]


@kernel("Cast")
def cast(node: NodeSpec, inputs):
    from edgeprune.train.kernels.dtypes import torch_dtype

    x, target = inputs[0], torch_dtype(int(node.attr("to")), node)
    if x.is_floating_point() and target.is_floating_point:
        return [x]  # the executor computes in one float precision (float64 in gradient checks)
    return [x.to(target)]


def _div(a, b):
    if not a.is_floating_point() and not b.is_floating_point():
        return torch.div(a, b, rounding_mode="trunc")  # ONNX integer division truncates
    return a / b


_BINARY: dict[str, Callable] = {
    "Add": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    "Div": _div,
    "Pow": torch.pow,
    "Equal": torch.eq,
    "Less": torch.lt,
    "Greater": torch.gt,
    "LessOrEqual": torch.le,
    "GreaterOrEqual": torch.ge,
    "And": torch.logical_and,
    "Or": torch.logical_or,
}


@kernel(*_BINARY)
def binary(node: NodeSpec, inputs):
    return [_BINARY[node.op](inputs[0], inputs[1])]


@kernel("Max", "Min", "Sum", "Mean")
def variadic(node: NodeSpec, inputs):
    out = inputs[0]
    for other in inputs[1:]:
        out = {"Max": torch.maximum, "Min": torch.minimum}.get(node.op, torch.add)(out, other)
    if node.op == "Mean":
        out = out / len(inputs)
    return [out]


@kernel("PRelu")
def prelu(node: NodeSpec, inputs):
    x, slope = inputs
    return [torch.where(x < 0, x * slope, x)]


@kernel("Where")
def where(node: NodeSpec, inputs):
    return [torch.where(inputs[0].bool(), inputs[1], inputs[2])]
