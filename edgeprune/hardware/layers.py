"""The layers latency is modelled on: every Conv, Gemm and weighted MatMul of a model, as plain shapes.

A `LayerSpec` is enough to rebuild the layer alone (the profiler measures it so) and to price it on a roofline;
its ``key`` names the shape, so a table measured for it is found again in a profile. Kept channel counts under
a plan come from the channel analysis: one matrix product of tracked positions with the keep mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from onnx import helper, numpy_helper

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.graph.model import ModelGraph
from edgeprune.graph.shapes import require_concrete

MODELLED_OPS = ("Conv", "Gemm", "MatMul")


@dataclass(frozen=True)
class LayerSpec:
    """One weighted layer at full size. ``cin`` counts input positions the layer reduces over (channels for a
    conv, features for a gemm); ``attributes`` are the node's own, copied when the layer is rebuilt alone.
    ``batch`` of a Gemm or MatMul counts its rows: the images, times H*W for a MatMul on an N,H,W,C map."""

    node: str
    op: str
    batch: int
    cin: int
    cout: int
    in_hw: tuple[int, ...]
    out_hw: tuple[int, ...]
    kernel: tuple[int, ...]
    group: int
    attributes: tuple[tuple[str, object], ...]
    in_tensor: str
    out_tensor: str
    in_prunable: bool
    out_prunable: bool
    has_bias: bool = True

    @property
    def depthwise(self) -> bool:
        return self.group > 1 and self.group == self.cin == self.cout

    @property
    def key(self) -> str:
        attrs = ",".join(f"{k}={v}" for k, v in self.attributes)
        hw = "x".join(map(str, self.in_hw))
        return f"{self.op}|b{self.batch}|in{self.cin}@{hw}|out{self.cout}|{attrs}"

    def macs(self, cin: float, cout: float) -> float:
        """MACs at the given kept counts (a depthwise layer keeps one count: its groups follow it)."""
        per_out = math.prod(self.kernel) * math.prod(self.out_hw) * self.batch
        if self.depthwise:
            return cout * per_out
        return cout * (cin / self.group) * per_out

    def activation_elements(self, cin: float, cout: float) -> float:
        return self.batch * (cin * math.prod(self.in_hw) + cout * math.prod(self.out_hw))

    def weight_elements(self, cin: float, cout: float) -> float:
        per = math.prod(self.kernel)
        return (cout * per if self.depthwise else cout * (cin / self.group) * per) + (cout if self.has_bias else 0)


def model_layers(model: ModelGraph, analysis: ChannelAnalysis) -> tuple[LayerSpec, ...]:
    """Every Conv/Gemm/MatMul with a constant weight and known input and output shapes, in graph order. A MatMul
    of two activations (attention) has no weight to prune and is left to the whole-model factor.

    A layer is priced at its input size, so a model whose height or width is dynamic is refused (fix the size
    with `with_input_shapes` first); a layer whose shapes inference leaves unknown is left to the
    whole-model factor."""
    require_concrete(model, "a latency prediction")
    initializers = {t.name: t for t in model.proto.graph.initializer}
    prunable = np.zeros(len(analysis.class_group), dtype=bool)
    for group in analysis.prunable_groups:
        prunable[analysis.members(group.id)] = True
    layers = []
    for node in model.proto.graph.node:
        if node.op_type not in MODELLED_OPS or len(node.input) < 2 or node.input[1] not in initializers:
            continue  # a MatMul of two activations (attention) included: no stored weight, no prunable size
        weight = initializers[node.input[1]]
        in_shape = model.shapes.get(node.input[0]) or ()
        out_shape = model.shapes.get(node.output[0]) or ()
        if len(in_shape) < 2 or len(out_shape) < 2 or not _static(in_shape[1:]) or not _static(out_shape[1:]):
            continue  # unknown rank or a dynamic size: nothing to price it by
        spec = _spec(node, tuple(weight.dims), in_shape, out_shape, len(node.input) > 2 and bool(node.input[2]))
        if spec is None:
            continue
        flags = [
            bool(prunable[ch.classes].any()) if ch is not None else False
            for ch in (analysis.tensors.get(spec.in_tensor), analysis.tensors.get(spec.out_tensor))
        ]
        layers.append(_replace_flags(spec, *flags))
    return tuple(layers)


def _spec(node, weight: tuple[int, ...], in_shape, out_shape, has_bias: bool) -> LayerSpec | None:
    batch = in_shape[0] if isinstance(in_shape[0], int) and in_shape[0] > 0 else 1
    attrs = tuple(sorted((a.name, _plain(helper.get_attribute_value(a))) for a in node.attribute))
    if node.op_type == "Conv":
        if len(weight) != 4 or len(in_shape) != 4:
            return None
        group = dict(attrs).get("group", 1)
        return LayerSpec(
            node.name,
            "Conv",
            batch,
            int(in_shape[1]),
            int(out_shape[1]),
            tuple(in_shape[2:]),
            tuple(out_shape[2:]),
            tuple(weight[2:]),
            int(group),
            attrs,
            node.input[0],
            node.output[0],
            False,
            False,
            has_bias,
        )
    if len(weight) != 2 or (node.op_type == "Gemm" and len(in_shape) != 2):
        return None  # a stored weight of another rank (batched weights) is left to the whole-model factor
    trans_b = dict(attrs).get("transB", 0) if node.op_type == "Gemm" else 0
    if node.op_type == "Gemm" and dict(attrs).get("transA", 0):
        return None
    features, outputs = (weight[1], weight[0]) if trans_b else (weight[0], weight[1])
    if node.op_type == "MatMul" and in_shape[-1] != features:
        return None
    # A MatMul by a stored matrix on an N,H,W,C map (a channels-last Linear) is one Gemm of N*H*W rows: the rows
    # are its "batch", so the roofline, the profiler's rebuilt layer and the key all see every site.
    rows = batch * math.prod(int(d) for d in in_shape[1:-1])
    return LayerSpec(
        node.name,
        node.op_type,
        rows,
        int(features),
        int(outputs),
        (),
        (),
        (),
        1,
        attrs,
        node.input[0],
        node.output[0],
        False,
        False,
        has_bias and node.op_type == "Gemm",
    )


def _replace_flags(spec: LayerSpec, in_prunable: bool, out_prunable: bool) -> LayerSpec:
    from dataclasses import replace

    return replace(spec, in_prunable=in_prunable, out_prunable=out_prunable)


def _static(dims) -> bool:
    return all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims)


def _plain(value):
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, bytes):
        return value.decode()
    if hasattr(value, "dims"):  # a tensor attribute: keep it small and printable
        return tuple(numpy_helper.to_array(value).ravel().tolist())
    return value


class KeptCounts:
    """Kept input and output counts of every layer under a keep mask (one bool per channel class).

    Each tracked side is the list of its positions' classes; a count is how many of those are kept, so one
    ``bincount`` over all of them prices every layer (a dense matrix product would cost far more)."""

    def __init__(self, layers: tuple[LayerSpec, ...], analysis: ChannelAnalysis) -> None:
        classes, owners, full = [], [], []
        for i, layer in enumerate(layers):
            for j, (tensor, width) in enumerate(((layer.in_tensor, layer.cin), (layer.out_tensor, layer.cout))):
                channels = analysis.tensors.get(tensor)
                if channels is not None and len(channels.classes) == width:
                    classes.append(np.asarray(channels.classes, dtype=np.int64))
                    owners.append(np.full(width, 2 * i + j, dtype=np.int64))
                    full.append(0.0)
                else:
                    full.append(float(width))  # untracked: always whole
        self._classes = np.concatenate(classes) if classes else np.zeros(0, dtype=np.int64)
        self._owners = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
        self._fixed = np.array(full, dtype=np.float64)

    def counts(self, keep: np.ndarray) -> np.ndarray:
        """Array (layers, 2) of kept (cin, cout)."""
        kept = np.bincount(self._owners, weights=keep[self._classes], minlength=len(self._fixed))
        return (kept + self._fixed).reshape(-1, 2)
