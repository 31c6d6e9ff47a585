"""Regression rows gathered inside the ONNX Runtime session, so only the sampled rows leave it.

Asking ONNX Runtime for a layer's whole input map costs a copy of it per batch, then Python pads it and
picks a few dozen patches per image out of it: on a MobileNetV2 at 224x224 that made a capture pass about
three times a plain pass, and a batch's maps took a gigabyte. Here the model gets, per distinct (tensor,
window, sampled size), a few nodes of its own (Pad, Transpose to channels-last, GatherND at the sampled
sites, one index input fed per batch), and returns only the (images, sites x taps, channels) rows; they are
laid out as `rows.patches` and `rows.linear_rows` lay them out, so the statistics are the same (tested).

Needs opset 12 (GatherND with batch_dims); `rows_gatherable` says when it applies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgeprune.capture.rows import ConvGeometry
from edgeprune.capture.session import ActivationRunner
from edgeprune.graph.model import ModelGraph

ONE_BY_ONE = ConvGeometry((1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1)  # a map's own values at its sites


@dataclass(frozen=True)
class Sampler:
    """Rows of ``tensor`` at the sites of ``size`` (the sampled map's height and width): im2col patches of
    a conv window (``geometry``; `ONE_BY_ONE` for the map's values), or with ``channels_last`` the vectors
    of an N,...,C map at its flattened sites."""

    tensor: str
    size: tuple[int, int]
    geometry: ConvGeometry | None = None
    channels_last: bool = False

    @property
    def taps(self) -> int:
        return 1 if self.geometry is None else self.geometry.kernel[0] * self.geometry.kernel[1]


def rows_gatherable(model: ModelGraph) -> bool:
    return model.opset >= 12


class SampledRunner:
    """One session returning, per batch, each sampler's rows and each of ``whole``'s tensors in full."""

    def __init__(self, model: ModelGraph, samplers, whole, positions: dict, provider: str = "auto") -> None:
        self.samplers = tuple(dict.fromkeys(samplers))
        self.positions = positions  # size -> (rows, 3) of (image, y, x) for every image, as sample_positions
        self.per_image = {size: _per_image(at) for size, at in positions.items()}
        proto, self.outputs, self.indices, self.widths = _with_samplers(model, self.samplers, self.per_image)
        names = list(dict.fromkeys(list(whole) + list(self.outputs.values())))
        self.runner = ActivationRunner(ModelGraph(proto, model.shapes, model.dtypes), names, provider)
        self.whole = tuple(whole)

    def run(self, inputs: dict[str, np.ndarray], first: int, count: int):
        """({sampler: rows (count x sites, columns)}, {tensor: values}) for images first .. first+count-1."""
        feeds = dict(inputs)
        for sampler in self.samplers:
            name = self.indices[sampler]
            if name not in feeds:
                feeds[name] = self._indices(sampler, first, count)
        values = self.runner.run(feeds)
        rows = {s: _layout(values[self.outputs[s]], s) for s in self.samplers}
        return rows, {name: values[name] for name in self.whole}

    def _indices(self, sampler: Sampler, first: int, count: int) -> np.ndarray:
        """(count, sites x taps, 1) flat indices into the padded map, image by image, tap by tap."""
        at = self.positions[sampler.size]
        at = at[(at[:, 0] >= first) & (at[:, 0] < first + count)]
        per = self.per_image[sampler.size]
        if sampler.channels_last:
            return at[:, 1].reshape(count, per, 1).astype(np.int64)
        g = sampler.geometry
        assert g is not None
        width = self.widths[sampler]
        (kh, kw), (sh, sw), (dh, dw) = g.kernel, g.strides, g.dilations
        ys = at[:, 1, None, None] * sh + np.arange(kh)[None, :, None] * dh
        xs = at[:, 2, None, None] * sw + np.arange(kw)[None, None, :] * dw
        flat = (ys * width + xs).reshape(count, per * kh * kw, 1)
        return flat.astype(np.int64)


def _per_image(positions: np.ndarray) -> int:
    if not len(positions):
        return 0
    return int(np.count_nonzero(positions[:, 0] == positions[0, 0]))


def _layout(values: np.ndarray, sampler: Sampler) -> np.ndarray:
    """(count, sites x taps, C) -> (count x sites, C x taps): the column order of `rows.patches`."""
    count, total, channels = values.shape
    taps = sampler.taps
    rows = values.reshape(count, total // taps, taps, channels).transpose(0, 1, 3, 2)
    return rows.reshape(count * (total // taps), channels * taps)


def _with_samplers(model: ModelGraph, samplers, per_image: dict):
    """The model's proto with each sampler's nodes: (proto, {sampler: output}, {sampler: index input},
    {sampler: the padded map's width})."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    graph = proto.graph
    outputs, indices, widths = {}, {}, {}
    elem = {name: onnx.helper.np_dtype_to_tensor_dtype(np.dtype(d)) for name, d in model.dtypes.items()}
    for i, s in enumerate(samplers):
        shape = model.shapes[s.tensor]
        prefix = f"edgeprune.rows.{i}"
        index = f"{prefix}.index"
        taps = per_image[s.size] * s.taps
        graph.input.append(helper.make_tensor_value_info(index, TensorProto.INT64, ["batch", taps, 1]))
        if s.channels_last:
            source = _reshaped(graph, prefix, s.tensor, [0, -1, _size(shape[-1])])
        else:
            g = s.geometry
            assert g is not None
            top, left, bottom, right = g.pads
            padded = s.tensor
            if any(g.pads):  # a 1x1 or unpadded window reads the map as it is
                pads = _constant(graph, f"{prefix}.pads", [0, 0, top, left, 0, 0, bottom, right])
                padded = f"{prefix}.padded"
                graph.node.append(helper.make_node("Pad", [s.tensor, pads], [padded], name=f"{prefix}.pad"))
            graph.node.append(
                helper.make_node("Transpose", [padded], [f"{prefix}.last"], perm=[0, 2, 3, 1], name=f"{prefix}.t")
            )
            widths[s] = _size(shape[3]) + left + right
            source = _reshaped(graph, prefix, f"{prefix}.last", [0, -1, _size(shape[1])])
        out = f"{prefix}.rows"
        graph.node.append(helper.make_node("GatherND", [source, index], [out], batch_dims=1, name=f"{prefix}.gather"))
        graph.output.append(helper.make_tensor_value_info(out, elem.get(s.tensor, TensorProto.FLOAT), None))
        outputs[s], indices[s] = out, index
    _reorder(graph, len(model.proto.graph.node))
    return proto, outputs, indices, widths


def _reorder(graph, original: int) -> None:
    """Each sampler's nodes right after the node that makes its tensor: ONNX Runtime runs nodes in about
    this order, and a map read at the very end of the graph would be held for the whole batch until then."""
    base, added = list(graph.node[:original]), list(graph.node[original:])
    made = {name: i for i, node in enumerate(base) for name in node.output}
    after: dict[int, list] = {}
    for node in added:  # a sampler's chain reads its map (or the one before it in the chain) first
        source = node.input[0]
        position = made.get(source, -1)
        made[node.output[0]] = position
        after.setdefault(position, []).append(node)
    ordered = after.get(-1, [])
    for i, node in enumerate(base):
        ordered.append(node)
        ordered.extend(after.get(i, []))
    del graph.node[:]
    graph.node.extend(ordered)


def _size(dim) -> int:
    """A concrete dimension (the callers sized the model first: capture refuses an unknown size)."""
    if not isinstance(dim, int):
        raise ValueError(f"a sampled map needs a concrete size, not {dim!r}")
    return dim


def _reshaped(graph, prefix: str, tensor: str, shape: list[int]) -> str:
    target = _constant(graph, f"{prefix}.shape", shape)
    out = f"{prefix}.flat"
    graph.node.append(helper.make_node("Reshape", [tensor, target], [out], name=f"{prefix}.reshape"))
    return out


def _constant(graph, name: str, values: list[int]) -> str:
    graph.initializer.append(helper.make_tensor(name, TensorProto.INT64, [len(values)], values))
    return name
