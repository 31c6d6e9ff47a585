"""Kernels of the ops that sum over channels: Conv, ConvTranspose, Gemm, MatMul."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgeprune.train.kernels.registry import NodeSpec, kernel

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def spatial_pads(node: NodeSpec, x: torch.Tensor, kernel_shape, strides, dilations) -> list[int]:
    """ONNX pads as [begin_1, ..., begin_n, end_1, ..., end_n], resolving auto_pad from the input size."""
    rank = len(kernel_shape)
    auto_pad = node.attr("auto_pad", "NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad in ("NOTSET", ""):
        return list(node.attr("pads", [0] * (2 * rank)))
    if auto_pad == "VALID":
        return [0] * (2 * rank)
    begins, ends = [], []
    for size, k, s, d in zip(x.shape[2:], kernel_shape, strides, dilations):
        out = -(-int(size) // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - int(size))
        small, large = total // 2, total - total // 2
        begins.append(large if auto_pad == "SAME_LOWER" else small)
        ends.append(small if auto_pad == "SAME_LOWER" else large)
    return begins + ends


def torch_padding(pads: list[int]) -> tuple[list[int], list[int] | None]:
    """Split ONNX pads into symmetric padding for the torch op and, if asymmetric, an explicit F.pad."""
    rank = len(pads) // 2
    begins, ends = pads[:rank], pads[rank:]
    if begins == ends:
        return begins, None
    explicit = []
    for b, e in zip(reversed(begins), reversed(ends)):  # F.pad wants the last dimension first
        explicit += [b, e]
    return [0] * rank, explicit


def _check_conv(node: NodeSpec) -> None:
    if len(node.attr("kernel_shape", [1, 1])) not in _CONV:
        raise node.refuse("only 1-D, 2-D and 3-D convolutions are implemented")


def _conv_inputs(node: NodeSpec, inputs):
    """x, weight, bias (or None), spatial rank, kernel shape, strides, dilations."""
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    rank = w.dim() - 2
    strides = list(node.attr("strides", [1] * rank))
    dilations = list(node.attr("dilations", [1] * rank))
    return x, w, bias, rank, list(w.shape[2:]), strides, dilations


@kernel("Conv", check=_check_conv)
def conv(node: NodeSpec, inputs):
    x, w, bias, rank, kernel_shape, strides, dilations = _conv_inputs(node, inputs)
    padding, explicit = torch_padding(spatial_pads(node, x, kernel_shape, strides, dilations))
    if explicit is not None:
        x = F.pad(x, explicit)
    return [_CONV[rank](x, w, bias, strides, padding, dilations, int(node.attr("group", 1)))]


@kernel("ConvTranspose", check=_check_conv)
def conv_transpose(node: NodeSpec, inputs):
    x, w, bias, rank, kernel_shape, strides, dilations = _conv_inputs(node, inputs)
    output_padding = list(node.attr("output_padding", [0] * rank))
    group = int(node.attr("group", 1))
    full = _CONV_T[rank](x, w, bias, strides, 0, output_padding, group, dilations)
    natural = [
        (int(n) - 1) * s + (k - 1) * d + 1 + op
        for n, s, k, d, op in zip(x.shape[2:], strides, kernel_shape, dilations, output_padding)
    ]
    output_shape = node.attr("output_shape")
    auto_pad = node.attr("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        wanted = (
            list(output_shape)[-rank:]
            if output_shape is not None
            else [int(n) * s for n, s in zip(x.shape[2:], strides)]
        )
        totals = [nat - want for nat, want in zip(natural, wanted)]
        lower = auto_pad == "SAME_LOWER"
        begins = [t - t // 2 if lower else t // 2 for t in totals]
        ends = [t - b for t, b in zip(totals, begins)]
    else:
        pads = list(node.attr("pads", [0] * (2 * rank)))
        begins, ends = pads[:rank], pads[rank:]
    index = [slice(None), slice(None)] + [slice(b, n - e) for b, e, n in zip(begins, ends, natural)]
    return [full[tuple(index)]]


@kernel("Gemm")
def gemm(node: NodeSpec, inputs):
    a, b = inputs[0], inputs[1]
    if node.attr("transA", 0):
        a = a.t()
    if node.attr("transB", 0):
        b = b.t()
    out = (a @ b) * float(node.attr("alpha", 1.0))
    if len(inputs) > 2 and inputs[2] is not None:
        out = out + float(node.attr("beta", 1.0)) * inputs[2]
    return [out]


@kernel("MatMul")
def matmul(node: NodeSpec, inputs):
    return [torch.matmul(inputs[0], inputs[1])]
