"""Kernels of the normalisations and the ops that mix channels: BatchNorm, InstanceNorm, LRN, LayerNorm,
GroupNorm, LpNormalization, MeanVarianceNormalization, Softmax/LogSoftmax/Hardmax."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgeprune.train.kernels.registry import NodeSpec, kernel


@kernel("BatchNormalization", static=(3, 4))
def batch_norm(node: NodeSpec, inputs):
    """Inference form (the running statistics are constants): what the exported graph computes."""
    x, scale, bias, mean, var = inputs[:5]
    return [F.batch_norm(x, mean, var, scale, bias, training=False, eps=float(node.attr("epsilon", 1e-5)))]


@kernel("InstanceNormalization")
def instance_norm(node: NodeSpec, inputs):
    x, scale, bias = inputs
    return [F.instance_norm(x, weight=scale, bias=bias, eps=float(node.attr("epsilon", 1e-5)))]


@kernel("LRN")
def lrn(node: NodeSpec, inputs):
    x, size = inputs[0], int(node.attr("size"))
    alpha, beta, bias = float(node.attr("alpha", 1e-4)), float(node.attr("beta", 0.75)), float(node.attr("bias", 1.0))
    squared = (x * x).unsqueeze(1)  # N, 1, C, spatial...
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2  # ONNX: floor((size-1)/2) before, ceil after
    pads = [0, 0] * (x.dim() - 2) + [before, after]
    window = F.pad(squared, pads).unfold(2, size, 1).sum(-1).squeeze(1)
    return [x / (bias + alpha / size * window) ** beta]


@kernel("LayerNormalization")
def layer_norm(node: NodeSpec, inputs):
    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    axis = int(node.attr("axis", -1)) % x.dim()
    eps = float(node.attr("epsilon", 1e-5))
    out = F.layer_norm(x, tuple(x.shape[axis:]), None, None, eps)
    out = out * scale
    return [out if bias is None else out + bias]


@kernel("GroupNormalization")
def group_norm(node: NodeSpec, inputs):
    x, scale, bias = inputs
    groups, channels = int(node.attr("num_groups")), x.shape[1]
    if scale.numel() != channels:  # opset 18 gives one scale and bias per group
        scale, bias = scale.repeat_interleave(channels // groups), bias.repeat_interleave(channels // groups)
    return [F.group_norm(x, groups, scale, bias, float(node.attr("epsilon", 1e-5)))]


@kernel("LpNormalization")
def lp_normalization(node: NodeSpec, inputs):
    x = inputs[0]
    return [F.normalize(x, p=float(node.attr("p", 2)), dim=int(node.attr("axis", -1)), eps=0.0)]


@kernel("MeanVarianceNormalization")
def mean_variance_normalization(node: NodeSpec, inputs):
    x = inputs[0]
    axes = tuple(node.attr("axes", [0, 2, 3]))
    mean = x.mean(dim=axes, keepdim=True)
    centred = x - mean
    return [centred / torch.sqrt((centred * centred).mean(dim=axes, keepdim=True) + 1e-9)]


def _softmax_like(node: NodeSpec, x: torch.Tensor, fn):
    if node.opset >= 13:
        return fn(x, int(node.attr("axis", -1)))
    axis = int(node.attr("axis", 1)) % x.dim()  # before opset 13: over the flattened dimensions from axis on
    flat = x.reshape(int(torch.tensor(x.shape[:axis]).prod()), -1)
    return fn(flat, 1).reshape(x.shape)


@kernel("Softmax")
def softmax(node: NodeSpec, inputs):
    return [_softmax_like(node, inputs[0], lambda t, d: torch.softmax(t, d))]


@kernel("LogSoftmax")
def log_softmax(node: NodeSpec, inputs):
    return [_softmax_like(node, inputs[0], lambda t, d: torch.log_softmax(t, d))]


@kernel("Hardmax")
def hardmax(node: NodeSpec, inputs):
    def one_hot(t, d):
        return F.one_hot(t.argmax(d), t.shape[d]).movedim(-1, d % t.dim()).to(t.dtype)

    return [_softmax_like(node, inputs[0], one_hot)]
