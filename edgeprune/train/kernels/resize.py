"""Kernels of Resize and Upsample: nearest and linear computed from ONNX's own coordinate formulas.

Each resized axis gathers from source indices computed exactly as the ONNX specification defines them
(coordinate transformation, then the nearest mode or linear weights), so every mode combination matches
ONNX Runtime instead of the nearest torch interpolation mode.
"""

from __future__ import annotations

import torch

from edgeprune.train.kernels.registry import NodeSpec, kernel

_COORDINATES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn")
_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _text(node: NodeSpec, key: str, default: str) -> str:
    value = node.attr(key, default)
    return value.decode() if isinstance(value, bytes) else value


def _check_resize(node: NodeSpec) -> None:
    mode = _text(node, "mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):
        raise node.refuse(f"Resize mode '{mode}' is not implemented (nearest and linear are)")
    if node.op == "Resize":
        coordinates = _text(node, "coordinate_transformation_mode", "half_pixel")
        if coordinates not in _COORDINATES:
            raise node.refuse(f"coordinate_transformation_mode '{coordinates}' is not implemented")
        if _text(node, "nearest_mode", "round_prefer_floor") not in _NEAREST:
            raise node.refuse("this nearest_mode is not implemented")
        if node.attr("antialias", 0) or node.attr("axes") is not None:
            raise node.refuse("Resize with antialias or axes is not implemented")
        if _text(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
            raise node.refuse("keep_aspect_ratio_policy other than stretch is not implemented")


def _source(coords: torch.Tensor, scale: float, size_in: int, size_out: int, mode: str) -> torch.Tensor:
    if mode == "half_pixel":
        return (coords + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (coords + 0.5) / scale - 0.5 if size_out > 1 else torch.zeros_like(coords)
    if mode == "align_corners":
        return coords * (size_in - 1) / (size_out - 1) if size_out > 1 else torch.zeros_like(coords)
    if mode == "tf_half_pixel_for_nn":
        return (coords + 0.5) / scale
    return coords / scale  # asymmetric


def _nearest_index(source: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "round_prefer_floor":
        return torch.ceil(source - 0.5)
    if mode == "round_prefer_ceil":
        return torch.floor(source + 0.5)
    return torch.floor(source) if mode == "floor" else torch.ceil(source)


def _resize_axis(x, axis: int, size_out: int, scale: float, mode: str, coordinates: str, nearest: str):
    size_in = x.shape[axis]
    coords = torch.arange(size_out, dtype=torch.float64, device=x.device)
    source = _source(coords, scale, size_in, size_out, coordinates)
    if mode == "nearest":
        index = _nearest_index(source, nearest).clamp(0, size_in - 1).long()
        return x.index_select(axis, index)
    source = source.clamp(0, size_in - 1)
    low = source.floor().long()
    high = (low + 1).clamp(max=size_in - 1)
    shape = [1] * x.dim()
    shape[axis] = size_out
    weight = (source - low).to(x.dtype).reshape(shape)
    return x.index_select(axis, low) * (1 - weight) + x.index_select(axis, high) * weight


def _resize(x, scales, sizes, mode: str, coordinates: str, nearest: str, node: NodeSpec):
    for axis in range(x.dim()):
        size_in = int(x.shape[axis])
        if sizes is not None:
            size_out = int(sizes[axis])
            scale = size_out / size_in
        else:
            scale = float(scales[axis])
            size_out = int(size_in * scale)
        if size_out == size_in and scale == 1.0:
            continue
        if axis < 2:
            raise node.refuse("resizing the batch or channel axis is not implemented")
        x = _resize_axis(x, axis, size_out, scale, "nearest" if mode == "nearest" else "linear", coordinates, nearest)
    return x


@kernel("Resize", static=(1, 2, 3), check=_check_resize)
def resize(node: NodeSpec, inputs):
    x = inputs[0]
    scales = sizes = None
    if node.opset < 11:
        scales = inputs[1].tolist()
    else:
        if len(inputs) > 3 and inputs[3] is not None and inputs[3].numel():
            sizes = inputs[3].tolist()
        elif len(inputs) > 2 and inputs[2] is not None and inputs[2].numel():
            scales = inputs[2].tolist()
    coordinates = _text(node, "coordinate_transformation_mode", "half_pixel" if node.opset >= 11 else "asymmetric")
    nearest = _text(node, "nearest_mode", "round_prefer_floor") if node.opset >= 11 else "floor"
    return [_resize(x, scales, sizes, _text(node, "mode", "nearest"), coordinates, nearest, node)]


@kernel("Upsample", static=(1,), check=_check_resize)
def upsample(node: NodeSpec, inputs):
    x = inputs[0]
    scales = node.attr("scales") if len(inputs) < 2 else inputs[1].tolist()
    return [_resize(x, scales, None, _text(node, "mode", "nearest"), "asymmetric", "floor", node)]
