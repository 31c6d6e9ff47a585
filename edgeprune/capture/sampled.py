"""Regression rows gathered inside the ONNX Runtime session, so only the sampled rows leave it.

Asking ONNX Runtime for a layer's whole input map costs a copy of it per batch, then Python pads it and
picks a few dozen patches per image out of it: on a MobileNetV2 at 224x224 that made a capture pass about
three times a plain pass, and a batch's maps took a gigabyte. Here the model gets, per distinct (tensor,
window, sampled size), a Reshape to one axis (a view) and a Gather of exactly the values the rows hold, at
indices fed per batch; a window tap that falls in the padding reads any value and is zeroed after. Only
the rows leave the session, laid out as `rows.patches` and `rows.linear_rows` lay them out (column order
channel, then tap), so the statistics are the same (tested).
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
    """Whether rows can be gathered in the session (a Gather on a flattened tensor: every opset has one)."""
    return True


class SampledRunner:
    """One session returning, per batch, each sampler's rows and each of ``whole``'s tensors in full."""

    def __init__(self, model: ModelGraph, samplers, whole, positions: dict, provider: str = "auto") -> None:
        self.samplers = tuple(dict.fromkeys(samplers))
        self.positions = positions  # size -> (rows, 3) of (image, y, x) for every image, as sample_positions
        self.shapes = {s: tuple(_size(d) for d in model.shapes[s.tensor][1:]) for s in self.samplers}
        proto, self.outputs, self.indices = _with_samplers(model, self.samplers)
        names = list(dict.fromkeys(list(whole) + list(self.outputs.values())))
        self.runner = ActivationRunner(ModelGraph(proto, model.shapes, model.dtypes), names, provider)
        self.whole = tuple(whole)

    def run(self, inputs: dict[str, np.ndarray], first: int, count: int):
        """({sampler: rows (count x sites, columns)}, {tensor: values}) for images first .. first+count-1."""
        feeds, masks = dict(inputs), {}
        for sampler in self.samplers:
            feeds[self.indices[sampler]], masks[sampler] = self._indices(sampler, first, count)
        values = self.runner.run(feeds)
        rows = {}
        for s in self.samplers:
            flat = values[self.outputs[s]]
            at = masks[s][0]
            shaped = flat.reshape(at, -1)
            if masks[s][1] is not None:
                shaped = shaped * masks[s][1]  # taps in the padding read zeros
            rows[s] = shaped
        return rows, {name: values[name] for name in self.whole}

    def _indices(self, sampler: Sampler, first: int, count: int):
        """Flat indices, in row order (image, site), then channel, then tap; and (rows, the mask of taps
        inside the map, or None when all are)."""
        at = self.positions[sampler.size]
        at = at[(at[:, 0] >= first) & (at[:, 0] < first + count)]
        image = (at[:, 0] - first).astype(np.int64)
        shape = self.shapes[sampler]
        if sampler.channels_last:
            sites, channels = int(np.prod(shape[:-1])), shape[-1]
            base = (image * sites + at[:, 1]) * channels
            return (base[:, None] + np.arange(channels)).reshape(-1), (len(at), None)
        g = sampler.geometry
        assert g is not None
        channels, height, width = shape
        (kh, kw), (sh, sw), (dh, dw) = g.kernel, g.strides, g.dilations
        top, left = g.pads[0], g.pads[1]
        ys = (at[:, 1, None] * sh - top + np.arange(kh)[None, :] * dh)[:, :, None]  # (rows, kh, 1)
        xs = (at[:, 2, None] * sw - left + np.arange(kw)[None, :] * dw)[:, None, :]  # (rows, 1, kw)
        inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
        spot = (np.clip(ys, 0, height - 1) * width + np.clip(xs, 0, width - 1)).reshape(len(at), 1, kh * kw)
        plane = height * width
        index = image[:, None, None] * (channels * plane) + np.arange(channels)[None, :, None] * plane + spot
        mask = None
        if not inside.all():
            mask = np.broadcast_to(inside.reshape(len(at), 1, kh * kw), (len(at), channels, kh * kw))
            mask = mask.reshape(len(at), -1).astype(np.float32)
        return index.reshape(-1), (len(at), mask)


def _with_samplers(model: ModelGraph, samplers):
    """The model's proto with each sampler's nodes: (proto, {sampler: output}, {sampler: index input})."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    graph = proto.graph
    outputs, indices = {}, {}
    elem = {name: onnx.helper.np_dtype_to_tensor_dtype(np.dtype(d)) for name, d in model.dtypes.items()}
    flat_shape = "edgeprune.rows.flat_shape"
    graph.initializer.append(helper.make_tensor(flat_shape, TensorProto.INT64, [1], [-1]))
    for i, s in enumerate(samplers):
        prefix = f"edgeprune.rows.{i}"
        index, flat, out = f"{prefix}.index", f"{prefix}.flat", f"{prefix}.rows"
        graph.input.append(helper.make_tensor_value_info(index, TensorProto.INT64, ["rows"]))
        graph.node.append(helper.make_node("Reshape", [s.tensor, flat_shape], [flat], name=f"{prefix}.reshape"))
        graph.node.append(helper.make_node("Gather", [flat, index], [out], axis=0, name=f"{prefix}.gather"))
        graph.output.append(helper.make_tensor_value_info(out, elem.get(s.tensor, TensorProto.FLOAT), None))
        outputs[s], indices[s] = out, index
    _reorder(graph, len(model.proto.graph.node))
    return proto, outputs, indices


def _reorder(graph, original: int) -> None:
    """Each sampler's nodes right after the node that makes its tensor: ONNX Runtime runs nodes in about
    this order, and a map read at the very end of the graph would be held for the whole batch until then."""
    base, added = list(graph.node[:original]), list(graph.node[original:])
    made = {name: i for i, node in enumerate(base) for name in node.output}
    after: dict[int, list] = {}
    for node in added:  # a sampler's chain reads its map (or the node before it in the chain) first
        position = made.get(node.input[0], -1)
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
