"""Kernels of pooling, spatial reductions, Pad and Resize."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgeprune.train.kernels.conv import spatial_pads, torch_padding
from edgeprune.train.kernels.registry import NodeSpec, kernel

_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _window(node: NodeSpec, x):
    kernel_shape = list(node.attr("kernel_shape"))
    rank = len(kernel_shape)
    strides = list(node.attr("strides", [1] * rank))
    dilations = list(node.attr("dilations", [1] * rank))
    pads = spatial_pads(node, x, kernel_shape, strides, dilations)
    return kernel_shape, strides, dilations, pads


def _check_pool(node: NodeSpec) -> None:
    if len(node.attr("kernel_shape", [])) not in _MAX:
        raise node.refuse("only 1-D, 2-D and 3-D pooling is implemented")
    if node.op == "MaxPool" and node.attr("storage_order", 0):
        raise node.refuse("MaxPool with storage_order=1 is not implemented")


@kernel("MaxPool", check=_check_pool)
def max_pool(node: NodeSpec, inputs):
    x = inputs[0]
    kernel_shape, strides, dilations, pads = _window(node, x)
    padding, explicit = torch_padding(pads)
    if explicit is not None or any(p > k // 2 for p, k in zip(padding, kernel_shape)):
        x = F.pad(x, explicit or _both(padding), value=-torch.inf)  # torch caps its padding at half a window
        padding = [0] * len(kernel_shape)
    ceil = bool(node.attr("ceil_mode", 0))
    return [_MAX[len(kernel_shape)](x, kernel_shape, strides, padding, dilations, ceil_mode=ceil)]


def _both(padding: list[int]) -> list[int]:
    explicit = []
    for p in reversed(padding):
        explicit += [p, p]
    return explicit


@kernel("AveragePool", check=_check_pool)
def average_pool(node: NodeSpec, inputs):
    x = inputs[0]
    kernel_shape, strides, dilations, pads = _window(node, x)
    if any(d != 1 for d in dilations):
        raise node.refuse("AveragePool with dilations is not implemented")
    include = bool(node.attr("count_include_pad", 0))
    ceil = bool(node.attr("ceil_mode", 0))
    padding, explicit = torch_padding(pads)
    pool = _AVG[len(kernel_shape)]
    if explicit is None and all(p <= k // 2 for p, k in zip(padding, kernel_shape)):
        return [pool(x, kernel_shape, strides, padding, ceil_mode=ceil, count_include_pad=include)]
    if ceil:
        raise node.refuse("AveragePool with ceil_mode and asymmetric or large pads is not implemented")
    explicit = explicit or _both(padding)
    summed = pool(F.pad(x, explicit), kernel_shape, strides, 0)
    if include:
        return [summed]
    ones = F.pad(torch.ones_like(x[:1, :1]), explicit)
    return [summed / pool(ones, kernel_shape, strides, 0)]


@kernel("LpPool", check=_check_pool)
def lp_pool(node: NodeSpec, inputs):
    x, p = inputs[0], float(node.attr("p", 2))
    kernel_shape, strides, dilations, pads = _window(node, x)
    if any(d != 1 for d in dilations):
        raise node.refuse("LpPool with dilations is not implemented")
    padding, explicit = torch_padding(pads)
    x = F.pad(x, explicit or _both(padding))
    count = int(torch.tensor(kernel_shape).prod())
    summed = _AVG[len(kernel_shape)](x.abs() ** p, kernel_shape, strides, 0) * count
    return [summed ** (1.0 / p)]


@kernel("GlobalAveragePool")
def global_average_pool(node: NodeSpec, inputs):
    x = inputs[0]
    return [x.mean(dim=tuple(range(2, x.dim())), keepdim=True)]


@kernel("GlobalMaxPool")
def global_max_pool(node: NodeSpec, inputs):
    x = inputs[0]
    return [x.amax(dim=tuple(range(2, x.dim())), keepdim=True)]


@kernel("GlobalLpPool")
def global_lp_pool(node: NodeSpec, inputs):
    x, p = inputs[0], float(node.attr("p", 2))
    return [(x.abs() ** p).sum(dim=tuple(range(2, x.dim())), keepdim=True) ** (1.0 / p)]


_REDUCE = {
    "ReduceMean": lambda x, d, k: x.mean(dim=d, keepdim=k),
    "ReduceSum": lambda x, d, k: x.sum(dim=d, keepdim=k),
    "ReduceMax": lambda x, d, k: x.amax(dim=d, keepdim=k),
    "ReduceMin": lambda x, d, k: x.amin(dim=d, keepdim=k),
    "ReduceProd": lambda x, d, k: _prod(x, d, k),
    "ReduceL1": lambda x, d, k: x.abs().sum(dim=d, keepdim=k),
    "ReduceL2": lambda x, d, k: torch.sqrt((x * x).sum(dim=d, keepdim=k)),
    "ReduceSumSquare": lambda x, d, k: (x * x).sum(dim=d, keepdim=k),
    "ReduceLogSumExp": lambda x, d, k: torch.logsumexp(x, dim=d, keepdim=k),
}


def _prod(x, dims, keepdim):
    for d in sorted(dims, reverse=True):
        x = x.prod(dim=d, keepdim=keepdim)
    return x


@kernel(*_REDUCE, static=(1,))
def reduce(node: NodeSpec, inputs):
    x = inputs[0]
    axes = node.attr("axes")
    if len(inputs) > 1 and inputs[1] is not None:
        axes = inputs[1].tolist()
    if axes is None or len(axes) == 0:
        if node.attr("noop_with_empty_axes", 0):
            return [x]
        axes = list(range(x.dim()))
    dims = tuple(int(a) % x.dim() for a in axes)
    return [_REDUCE[node.op](x, dims, bool(node.attr("keepdims", 1)))]


@kernel("Pad", static=(1, 2, 3))
def pad(node: NodeSpec, inputs):
    x = inputs[0]
    mode = node.attr("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if node.opset < 11:
        pads, value = list(node.attr("pads")), float(node.attr("value", 0.0))
    else:
        pads = inputs[1].tolist()
        value = inputs[2].item() if len(inputs) > 2 and inputs[2] is not None and inputs[2].numel() else 0.0
    axes = list(range(x.dim()))
    if len(inputs) > 3 and inputs[3] is not None:
        axes = [int(a) % x.dim() for a in inputs[3].tolist()]
    n = len(axes)
    per_axis = {axis: (pads[i], pads[i + n]) for i, axis in enumerate(axes)}
    last = max((a for a, p in per_axis.items() if p != (0, 0)), default=None)
    if last is None:
        return [x]
    first = min(a for a, p in per_axis.items() if p != (0, 0))
    explicit = []
    for axis in range(x.dim() - 1, first - 1, -1):
        explicit += list(per_axis.get(axis, (0, 0)))
    torch_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}.get(mode)
    if torch_mode is None:
        raise node.refuse(f"Pad mode '{mode}' is not implemented")
    if torch_mode == "constant":
        return [F.pad(x, explicit, value=value)]
    if first < 2:
        raise node.refuse(f"Pad mode '{mode}' on the batch or channel axis is not implemented")
    return [F.pad(x, explicit, mode=torch_mode)]
