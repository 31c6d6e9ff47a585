"""Normalisation: the rewrites that make any exported CNN look the same to the channel analysis.

Each pass keeps the model's outputs (up to float rounding); tests check that on every corpus model.
- Constant nodes, ConstantOfShape and other constant subgraphs become initializers.
- BatchNormalization, or a per-channel Mul/Add/Sub/Div, right after a Conv is folded into the Conv.
- A channel shuffle (Reshape to N,g,C/g,... -> Transpose(0,2,1,...) -> Reshape back) becomes one
  Gather on the channel axis, so pruning can keep any subset of its channels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def fold_graph(graph) -> int:
    """Name every node and fold constants, in place; return how many nodes went.

    Shapes should be inferred again afterwards: folded shape arithmetic can resolve dimensions that
    make more shape reads static, so callers repeat until nothing more folds.
    """
    _name_nodes(graph)
    before = len(graph.nodes)
    _fold_constants(graph)
    return before - len(graph.nodes)


def rewrite_graph(graph) -> list[str]:
    """Run the pattern rewrites in place (on a graph with inferred shapes); one note per rewrite kind."""
    notes: list[str] = []
    for label, rewrite in _PASSES:
        count = rewrite(graph)
        if count:
            notes.append(f"{label}: {count}")
            graph.cleanup().toposort()
    return notes


def _name_nodes(graph) -> None:
    """Give every node a unique, stable name: channel groups are named after their producer nodes."""
    seen: set[str] = set()
    for index, node in enumerate(graph.nodes):
        name = node.name or f"{node.op}_{index}"
        while name in seen:
            name = f"{name}_{index}"
        node.name = name
        seen.add(name)


def _fold_constants(graph) -> None:
    import onnx_graphsurgeon as gs

    _fold_static_shape_reads(graph)

    for node in graph.nodes:
        if node.op == "Constant" and len(node.outputs) == 1 and "value" in node.attrs:
            out = node.outputs[0]
            _replace_with_constant(
                graph, node, gs.Constant(out.name + "__const", np.asarray(node.attrs["value"].values))
            )
    graph.cleanup()
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # folding runs sessions whose optimiser warnings mean nothing here
    try:
        graph.fold_constants(error_ok=True)
    except Exception as exc:  # folding is an optimisation: a model it cannot fold is still usable
        logger.debug("constant folding stopped early: %s", exc)
    finally:
        ort.set_default_logger_severity(2)
    graph.cleanup().toposort()


def _fold_static_shape_reads(graph) -> None:
    """Shape(x) -> Gather(i) is a constant when dimension i of x is static (only the batch is dynamic).

    Exports with a dynamic batch compute channel counts this way (x.size(1) // 2); as constants they
    fold away, and the ops they feed (Slice bounds, Reshape targets) become readable.
    """
    import onnx_graphsurgeon as gs

    for node in [n for n in graph.nodes if n.op == "Shape" and n.inputs and n.inputs[0].shape is not None]:
        dims = list(node.inputs[0].shape)[node.attrs.get("start", 0) : node.attrs.get("end", None)]
        for gather in [c for c in node.outputs[0].outputs if c.op == "Gather"]:
            indices = _constant(gather.inputs[1])
            if indices is None or gather.attrs.get("axis", 0) != 0:
                continue
            picked = [dims[int(i)] for i in np.asarray(indices).reshape(-1)]
            if not all(isinstance(d, (int, np.integer)) for d in picked):
                continue
            value = np.asarray(picked, dtype=np.int64).reshape(np.asarray(indices).shape)
            _replace_with_constant(graph, gather, gs.Constant(gather.outputs[0].name + "__static", value))
    graph.cleanup()


def _replace_with_constant(graph, node, constant) -> None:
    """Consumers of ``node``'s output read ``constant`` instead; the node is left for cleanup.

    A graph output keeps its producer, since outputs must stay produced by a node."""
    out = node.outputs[0]
    for consumer in list(out.outputs):
        for index, tensor in enumerate(consumer.inputs):
            if tensor is out:
                consumer.inputs[index] = constant
    if out not in graph.outputs:
        node.outputs.clear()


def _constant(tensor):
    import onnx_graphsurgeon as gs

    return tensor.values if isinstance(tensor, gs.Constant) else None


def _sole_consumer(graph, tensor):
    if len(tensor.outputs) != 1 or tensor in graph.outputs:
        return None
    return tensor.outputs[0]


def _conv_weight_bias(conv) -> tuple[np.ndarray, np.ndarray] | None:
    weight = _constant(conv.inputs[1]) if len(conv.inputs) > 1 else None
    if weight is None or weight.dtype.kind != "f":
        return None
    if len(conv.inputs) > 2 and conv.inputs[2].name:
        bias = _constant(conv.inputs[2])
        if bias is None:
            return None
    else:
        bias = np.zeros(weight.shape[0], dtype=weight.dtype)
    return weight, bias


def _set_conv_weight_bias(conv, weight: np.ndarray, bias: np.ndarray) -> None:
    import onnx_graphsurgeon as gs

    conv.inputs[1] = gs.Constant(f"{conv.name}.weight", weight.astype(conv.inputs[1].values.dtype))
    bias_const = gs.Constant(f"{conv.name}.bias", bias.astype(conv.inputs[1].values.dtype))
    if len(conv.inputs) > 2:
        conv.inputs[2] = bias_const
    else:
        conv.inputs.append(bias_const)


def _absorb(conv, follower) -> None:
    """``conv`` now writes what ``follower`` wrote; ``follower`` is left dangling for cleanup."""
    conv.outputs = [follower.outputs[0]]
    follower.outputs.clear()


def _fold_batchnorm(graph) -> int:
    folded = 0
    for conv in [n for n in graph.nodes if n.op == "Conv"]:
        bn = _sole_consumer(graph, conv.outputs[0]) if conv.outputs else None
        if bn is None or bn.op != "BatchNormalization" or bn.attrs.get("training_mode", 0):
            continue
        if any(t.outputs or t in graph.outputs for t in bn.outputs[1:]):
            continue
        params = [_constant(t) for t in bn.inputs[1:5]]
        weight_bias = _conv_weight_bias(conv)
        if weight_bias is None or any(p is None for p in params):
            continue
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)
        scale = gamma / np.sqrt(var + bn.attrs.get("epsilon", 1e-5))
        weight, bias = weight_bias
        shape = (-1,) + (1,) * (weight.ndim - 1)
        _set_conv_weight_bias(conv, weight * scale.reshape(shape), (bias - mean) * scale + beta)
        _absorb(conv, bn)
        folded += 1
    return folded


def _per_channel(values: np.ndarray, channels: int, rank: int) -> np.ndarray | None:
    """The constant as one value per channel, if it broadcasts per channel on an N,C,... tensor."""
    if values.size == 1:
        return np.full(channels, values.reshape(-1)[0], dtype=np.float64)
    if values.ndim > rank:
        return None
    padded = (1,) * (rank - values.ndim) + values.shape
    if padded[1] == channels and all(d == 1 for i, d in enumerate(padded) if i != 1):
        return values.reshape(-1).astype(np.float64)
    return None


def _fold_affine(graph) -> int:
    """Fold Conv -> Mul/Add/Sub/Div by a per-channel constant into the Conv."""
    folded = 0
    for conv in [n for n in graph.nodes if n.op == "Conv"]:
        while conv.outputs:
            follower = _sole_consumer(graph, conv.outputs[0])
            if follower is None or follower.op not in ("Mul", "Add", "Sub", "Div") or len(follower.inputs) != 2:
                break
            position = 0 if follower.inputs[0] is conv.outputs[0] else 1
            other = _constant(follower.inputs[1 - position])
            weight_bias = _conv_weight_bias(conv)
            if other is None or weight_bias is None or (position == 1 and follower.op in ("Sub", "Div")):
                break
            weight, bias = weight_bias
            vector = _per_channel(other, weight.shape[0], weight.ndim)
            if vector is None:
                break
            shape = (-1,) + (1,) * (weight.ndim - 1)
            if follower.op == "Mul":
                weight, bias = weight * vector.reshape(shape), bias * vector
            elif follower.op == "Div":
                weight, bias = weight / vector.reshape(shape), bias / vector
            else:
                bias = bias + vector if follower.op == "Add" else bias - vector
            _set_conv_weight_bias(conv, weight, bias)
            _absorb(conv, follower)
            folded += 1
    return folded


def _shuffle_indices(first, graph) -> tuple[np.ndarray, Any] | None:
    """If ``first`` starts a channel-shuffle chain, the channel permutation and the chain's last node."""
    source, split = first.inputs[0].shape, first.outputs[0].shape  # inferred, so computed targets work
    if source is None or split is None or len(source) < 3 or len(split) != len(source) + 1:
        return None
    rank, channels, groups = len(source), source[1], split[1]
    if not all(isinstance(d, (int, np.integer)) for d in (channels, groups, split[2])):
        return None
    if groups <= 1 or channels % groups or split[2] != channels // groups or list(split[3:]) != list(source[2:]):
        return None
    transpose = _sole_consumer(graph, first.outputs[0])
    if transpose is None or transpose.op != "Transpose":
        return None
    if list(transpose.attrs.get("perm", [])) != [0, 2, 1] + list(range(3, rank + 1)):
        return None
    last = _sole_consumer(graph, transpose.outputs[0])
    merged = last.outputs[0].shape if last is not None and last.op == "Reshape" else None
    if merged is None or list(merged[1:]) != list(source[1:]):
        return None
    return np.arange(channels).reshape(groups, channels // groups).T.reshape(-1), last


def _shuffle_to_gather(graph) -> int:
    import onnx_graphsurgeon as gs

    rewritten = 0
    for node in [n for n in graph.nodes if n.op == "Reshape"]:
        if not node.outputs or not node.inputs:
            continue
        found = _shuffle_indices(node, graph)
        if found is None:
            continue
        indices, last = found
        gather = gs.Node(
            "Gather",
            name=f"{node.name}.shuffle",
            attrs={"axis": 1},
            inputs=[node.inputs[0], gs.Constant(f"{node.name}.shuffle_indices", indices.astype(np.int64))],
            outputs=[last.outputs[0]],
        )
        last.outputs.clear()
        graph.nodes.append(gather)
        rewritten += 1
    return rewritten


_PASSES: tuple[tuple[str, Callable], ...] = (
    ("folded BatchNormalization into Conv", _fold_batchnorm),
    ("folded per-channel affine into Conv", _fold_affine),
    ("channel shuffles expressed as Gather", _shuffle_to_gather),
)
