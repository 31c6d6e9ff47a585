"""The masked original: the unpruned model with dropped channels zeroed where they are summed over.

Every channel of a group ends, eventually, in a node that sums over channels (a conv, a gemm) or in
something that froze the group. Zeroing the dropped channels at the inputs of those summing nodes
therefore computes exactly what the pruned model computes: the proof that surgery is right. A removed
residual block is its branch multiplied by zero where it enters the Add: ``x + 0 * branch`` is ``x``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeprune.analysis.blocks import ResidualBlock
from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.graph.load import export_clean
from edgeprune.graph.model import ModelGraph


def masked_model(
    model: ModelGraph, analysis: ChannelAnalysis, keep: np.ndarray, removed: Sequence[ResidualBlock] = ()
) -> ModelGraph:
    import onnx_graphsurgeon as gs

    graph = model.gs_graph()
    nodes = {node.name: node for node in graph.nodes}
    tensors = graph.tensors()
    masked: dict[str, object] = {}
    for node_name, tensor_name in analysis.reducing_edges:
        kept = analysis.kept_positions(tensor_name, keep)
        if kept is None or kept.all():
            continue
        if tensor_name not in masked:
            source = tensors[tensor_name]
            channels = analysis.tensors[tensor_name]
            shape = [1] * len(model.shapes[tensor_name])
            shape[channels.axis] = len(kept)
            dtype = model.dtypes.get(tensor_name, np.dtype(np.float32))
            mask = gs.Constant(f"{tensor_name}.mask", kept.astype(dtype).reshape(shape))
            output = gs.Variable(f"{tensor_name}.masked", dtype=dtype)
            graph.nodes.append(gs.Node("Mul", name=f"{tensor_name}.mask_mul", inputs=[source, mask], outputs=[output]))
            masked[tensor_name] = output
        node = nodes[node_name]
        for index, tensor in enumerate(node.inputs):
            if tensor.name == tensor_name:
                node.inputs[index] = masked[tensor_name]
    for block in removed:
        add = nodes[block.id]
        branch = add.inputs[1 - block.shortcut_index]
        dtype = model.dtypes.get(branch.name, np.dtype(np.float32))
        zero = gs.Constant(f"{block.id}.removed", np.zeros((), dtype=dtype))
        output = gs.Variable(f"{branch.name}.removed", dtype=dtype)
        graph.nodes.append(gs.Node("Mul", name=f"{block.id}.removed_mul", inputs=[branch, zero], outputs=[output]))
        add.inputs[1 - block.shortcut_index] = output
    return ModelGraph.from_proto(export_clean(graph), source_sha256=model.source_sha256)
