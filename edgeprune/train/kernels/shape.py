"""Kernels of the layout ops: Concat, Split, Slice, Gather, Flatten, Reshape, Squeeze, Unsqueeze, Transpose,
DepthToSpace/SpaceToDepth, and the shape arithmetic a dynamic batch leaves in a graph (Shape, Expand...)."""

from __future__ import annotations

import torch

from edgeprune.train.kernels.registry import NodeSpec, kernel

_INT64_MAX = 2**63 - 1


def _axes(node: NodeSpec, inputs, position: int) -> list[int] | None:
    """Axes from the attribute (older opsets) or from input ``position`` (newer ones)."""
    if len(inputs) > position and inputs[position] is not None:
        return [int(a) for a in inputs[position].tolist()]
    axes = node.attr("axes")
    return None if axes is None else [int(a) for a in axes]


@kernel("Concat")
def concat(node: NodeSpec, inputs):
    return [torch.cat([t for t in inputs if t is not None], dim=int(node.attr("axis")))]


@kernel("Split", static=(1,))
def split(node: NodeSpec, inputs):
    x, axis = inputs[0], int(node.attr("axis", 0))
    sizes = node.attr("split")
    if len(inputs) > 1 and inputs[1] is not None:
        sizes = inputs[1].tolist()
    if sizes is None:
        parts = int(node.attr("num_outputs", node.attr("_outputs")))
        length = x.shape[axis]
        step = -(-length // parts)
        sizes = [min(step, length - i * step) for i in range(parts)]
    return list(torch.split(x, [int(s) for s in sizes], dim=axis))


@kernel("Slice", static=(1, 2, 3, 4))
def slice_(node: NodeSpec, inputs):
    x = inputs[0]
    if node.opset < 10:
        starts, ends, axes, steps = node.attr("starts"), node.attr("ends"), node.attr("axes"), None
    else:
        starts, ends = inputs[1].tolist(), inputs[2].tolist()
        axes = _axes(node, inputs, 3)
        steps = inputs[4].tolist() if len(inputs) > 4 and inputs[4] is not None else None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = int(axis) % x.dim()
        bounds = _python_slice(int(start), int(end), int(step), x.shape[axis])
        if step == 1:
            x = x.narrow(axis, bounds.start, max(0, bounds.stop - bounds.start))
        else:  # torch slicing takes no negative steps: gather the positions instead
            x = x.index_select(axis, torch.arange(x.shape[axis], device=x.device)[bounds])
    return [x]


def _python_slice(start: int, end: int, step: int, length: int) -> slice:
    """ONNX's clamping of slice bounds (INT64_MAX means the end, negatives count from the end) as a slice."""
    if step > 0:
        start = max(0, min(length, start + length if start < 0 else start))
        end = max(0, min(length, end + length if end < 0 else end))
        return slice(start, end, step)
    start = max(-1, min(length - 1, start + length if start < 0 else start))
    end = max(-1, min(length - 1, end + length if end < 0 else end))
    return slice(start, end if end >= 0 else None, step)


@kernel("Gather")
def gather(node: NodeSpec, inputs):
    x, indices = inputs
    axis = int(node.attr("axis", 0)) % x.dim()
    indices = indices.long()
    flat = torch.where(indices < 0, indices + x.shape[axis], indices).reshape(-1)
    out = x.index_select(axis, flat)
    return [out.reshape(tuple(x.shape[:axis]) + tuple(indices.shape) + tuple(x.shape[axis + 1 :]))]


@kernel("Flatten")
def flatten(node: NodeSpec, inputs):
    x = inputs[0]
    axis = int(node.attr("axis", 1)) % (x.dim() + 1) if x.dim() else 0
    lead = 1
    for size in x.shape[:axis]:
        lead *= int(size)
    return [x.reshape(lead, -1)]


@kernel("Reshape", static=(1,))
def reshape(node: NodeSpec, inputs):
    x, target = inputs[0], [int(v) for v in inputs[1].tolist()]
    if not node.attr("allowzero", 0):
        target = [x.shape[i] if v == 0 else v for i, v in enumerate(target)]
    return [x.reshape(target)]


@kernel("Squeeze", static=(1,))
def squeeze(node: NodeSpec, inputs):
    x, axes = inputs[0], _axes(node, inputs, 1)
    if axes is None:
        return [x.squeeze()] if x.dim() else [x]
    for axis in sorted((a % x.dim() for a in axes), reverse=True):
        x = x.squeeze(axis)
    return [x]


@kernel("Unsqueeze", static=(1,))
def unsqueeze(node: NodeSpec, inputs):
    x, axes = inputs[0], _axes(node, inputs, 1)
    if axes is None:
        raise node.refuse("Unsqueeze without axes")
    rank = x.dim() + len(axes)
    for axis in sorted(a % rank for a in axes):
        x = x.unsqueeze(axis)
    return [x]


@kernel("Transpose")
def transpose(node: NodeSpec, inputs):
    x = inputs[0]
    perm = node.attr("perm")
    return [x.permute(*(perm if perm is not None else reversed(range(x.dim()))))]


@kernel("DepthToSpace")
def depth_to_space(node: NodeSpec, inputs):
    x, b = inputs[0], int(node.attr("blocksize"))
    n, c, h, w = x.shape
    mode = node.attr("mode", "DCR")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode == "DCR":
        y = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, c // (b * b), b, b, h, w).permute(0, 1, 4, 2, 5, 3)
    return [y.reshape(n, c // (b * b), h * b, w * b)]


@kernel("SpaceToDepth")
def space_to_depth(node: NodeSpec, inputs):
    x, b = inputs[0], int(node.attr("blocksize"))
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4)
    return [y.reshape(n, c * b * b, h // b, w // b)]


@kernel("Shape")
def shape(node: NodeSpec, inputs):
    dims = list(inputs[0].shape)
    start, end = node.attr("start", 0), node.attr("end")
    return [torch.tensor(dims[start:end], dtype=torch.int64)]


@kernel("Size")
def size(node: NodeSpec, inputs):
    return [torch.tensor(inputs[0].numel(), dtype=torch.int64)]


@kernel("Constant")
def constant(node: NodeSpec, inputs):
    return [node.attr("value").clone()]


@kernel("ConstantOfShape", static=(0,))
def constant_of_shape(node: NodeSpec, inputs):
    value = node.attr("value")
    fill = value.reshape(-1)[0] if value is not None else torch.tensor(0.0)
    return [torch.full([int(v) for v in inputs[0].tolist()], fill.item(), dtype=fill.dtype)]


@kernel("Expand", static=(1,))
def expand(node: NodeSpec, inputs):
    x, target = inputs[0], [int(v) for v in inputs[1].tolist()]
    return [x * torch.ones(target, dtype=x.dtype, device=x.device)]  # ONNX Expand broadcasts both ways


@kernel("Tile", static=(1,))
def tile(node: NodeSpec, inputs):
    return [inputs[0].repeat(*[int(v) for v in inputs[1].tolist()])]


@kernel("Range")
def range_(node: NodeSpec, inputs):
    start, limit, delta = (t.item() for t in inputs)
    return [torch.arange(start, limit, delta, dtype=inputs[0].dtype)]


@kernel("ArgMax", "ArgMin")
def arg_reduce(node: NodeSpec, inputs):
    x, axis, keep = inputs[0], int(node.attr("axis", 0)), bool(node.attr("keepdims", 1))
    fn = torch.argmax if node.op == "ArgMax" else torch.argmin
    return [fn(x, dim=axis, keepdim=keep)]
