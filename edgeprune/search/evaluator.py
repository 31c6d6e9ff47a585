"""Evaluating many plans with one session: the original model with a channel-mask input per prunable group.

A plan never needs surgery to be judged. The masked original (`edgeprune.surgery.mask`) already proves that
zeroing the dropped channels at the inputs of the summing consumers computes exactly what the pruned model
computes; here the constant masks become graph inputs, so one ONNX Runtime session evaluates any plan by
feeding a different mask. Each group's mask input is a float vector [channels] (1 keep, 0 drop); every
masked tensor gathers its per-position mask from the concatenation of the group masks, so tensors that mix
groups (a concat) or repeat channels (a flatten before a gemm) are masked position by position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.graph.load import export_clean
from edgeprune.graph.model import ModelGraph

MASK_PREFIX = "edgeprune.mask:"


class MaskedEvaluator:
    """One ORT session of the original model with a float mask input [C] per prunable group."""

    def __init__(
        self,
        model: ModelGraph,
        analysis: ChannelAnalysis,
        batches: Sequence[Mapping[str, np.ndarray]],
        extra_outputs: Sequence[str] = (),
        provider: str = "auto",
        threads: int | None = None,
    ) -> None:
        from edgeprune.capture.session import KEEPS_OUTPUTS, with_outputs
        from edgeprune.runtime import create_session

        self.analysis = analysis
        self.groups = analysis.prunable_groups
        self.mask_inputs = {g.id: f"{MASK_PREFIX}{g.id}" for g in self.groups}
        self.output_names = tuple(model.output_names)
        self.extra_outputs = tuple(n for n in dict.fromkeys(extra_outputs) if n not in self.output_names)
        masked = ModelGraph.from_proto(self._graph(model, analysis))
        self.session = create_session(with_outputs(masked, self.extra_outputs), provider, threads, KEEPS_OUTPUTS)
        self.names = list(self.output_names + self.extra_outputs)
        self.batches = [{name: np.ascontiguousarray(v) for name, v in b.items()} for b in batches]

    def _graph(self, model: ModelGraph, analysis: ChannelAnalysis):
        """The graph the session runs: the original with the mask inputs (a subclass adds more inputs)."""
        return _mask_inputs_model(model, analysis, self.mask_inputs)

    def feeds(self, kept: Mapping[str, Sequence[int]]) -> dict[str, np.ndarray]:
        """Everything but the images that the session takes for a plan: here, its masks."""
        return self.masks(kept)

    def masks(self, kept: Mapping[str, Sequence[int]]) -> dict[str, np.ndarray]:
        """The mask feeds of a plan: 1 for kept channels, 0 for dropped ones; all ones for groups not named."""
        feeds = {}
        for group in self.groups:
            mask = np.ones(group.channels, dtype=np.float32)
            if group.id in kept:
                mask[:] = 0
                mask[np.asarray(kept[group.id], dtype=np.int64)] = 1
            feeds[self.mask_inputs[group.id]] = mask
        unknown = set(kept) - set(self.mask_inputs)
        if unknown:
            raise KeyError(f"not prunable groups of this model: {', '.join(sorted(unknown))}")
        return feeds

    def evaluate(self, kept: Mapping[str, Sequence[int]]) -> list[dict[str, np.ndarray]]:
        """Per batch: the model outputs and the extra_outputs tensors, with every group masked to its kept channels
        (groups missing from ``kept`` keep all channels)."""
        feeds = self.feeds(kept)
        results = []
        for batch in self.batches:
            values = self.session.run(self.names, {**batch, **feeds})
            results.append(dict(zip(self.names, values)))
        return results


def _mask_inputs_model(model: ModelGraph, analysis: ChannelAnalysis, mask_inputs: Mapping[str, str]):
    """The original graph with a Mul before every summing consumer's input that carries prunable channels.

    As in `masked_model`, each distinct tensor is masked once and every reducing edge that reads it is
    rewired to the masked copy; the mask of a tensor is a Gather of the group masks by channel class.
    """
    import onnx_graphsurgeon as gs

    graph = model.gs_graph()
    nodes = {node.name: node for node in graph.nodes}
    tensors = graph.tensors()
    prunable = np.array([g.prunable for g in analysis.groups])
    position = _class_positions(analysis)
    dtype = np.dtype(np.float32)
    group_masks = [
        gs.Variable(name, dtype=dtype, shape=[analysis.group(gid).channels]) for gid, name in mask_inputs.items()
    ]
    graph.inputs.extend(group_masks)
    ones = gs.Constant("edgeprune.mask.ones", np.ones(1, dtype=dtype))
    everything = gs.Variable("edgeprune.mask.all", dtype=dtype)
    graph.nodes.append(
        gs.Node(
            "Concat", name="edgeprune.mask.concat", inputs=[*group_masks, ones], outputs=[everything], attrs={"axis": 0}
        )
    )
    masked: dict[str, object] = {}
    for node_name, tensor_name in analysis.reducing_edges:
        channels = analysis.tensors.get(tensor_name)
        if channels is None or not prunable[analysis.class_group[channels.classes]].any():
            continue
        if tensor_name not in masked:
            masked[tensor_name] = _masked_tensor(
                graph,
                tensors[tensor_name],
                channels,
                position,
                everything,
                len(model.shapes[tensor_name]),
                np.dtype(model.dtypes.get(tensor_name, dtype)),
            )
        node = nodes[node_name]
        for index, tensor in enumerate(node.inputs):
            if tensor.name == tensor_name:
                node.inputs[index] = masked[tensor_name]
    return export_clean(graph)


def _class_positions(analysis: ChannelAnalysis) -> np.ndarray:
    """Per global class, its index in the concatenated mask vector (the trailing 1 for frozen classes)."""
    groups = analysis.prunable_groups
    position = np.full(len(analysis.class_group), sum(g.channels for g in groups), dtype=np.int64)
    offset = 0
    for group in groups:
        position[analysis.members(group.id)] = offset + np.arange(group.channels)
        offset += group.channels
    return position


def _masked_tensor(graph, source, channels, position, everything, rank: int, dtype):
    import onnx_graphsurgeon as gs
    from onnx.helper import np_dtype_to_tensor_dtype as onnx_type

    name = source.name
    shape = [1] * rank
    shape[channels.axis] = len(channels.classes)
    index = gs.Constant(f"{name}.mask_index", position[channels.classes].astype(np.int64))
    flat = gs.Variable(f"{name}.mask_flat", dtype=np.float32)
    mask = gs.Variable(f"{name}.mask", dtype=dtype)
    output = gs.Variable(f"{name}.masked", dtype=dtype)
    graph.nodes.append(
        gs.Node("Gather", name=f"{name}.mask_gather", inputs=[everything, index], outputs=[flat], attrs={"axis": 0})
    )
    if dtype != np.float32:  # masks are fed as float32; a float16 model multiplies in its own type
        cast = gs.Variable(f"{name}.mask_cast", dtype=dtype)
        graph.nodes.append(
            gs.Node("Cast", name=f"{name}.mask_to", inputs=[flat], outputs=[cast], attrs={"to": onnx_type(dtype)})
        )
        flat = cast
    graph.nodes.extend(
        [
            gs.Node(
                "Reshape",
                name=f"{name}.mask_shape",
                inputs=[flat, gs.Constant(f"{name}.mask_dims", np.array(shape, dtype=np.int64))],
                outputs=[mask],
            ),
            gs.Node("Mul", name=f"{name}.mask_mul", inputs=[source, mask], outputs=[output]),
        ]
    )
    return output
