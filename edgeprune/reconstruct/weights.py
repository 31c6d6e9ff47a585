"""A refitted layer's parameters: read as an (outputs, columns) matrix on its regression rows and a bias, and
written back into the graph (the bias into the layer, or into the Add after a MatMul)."""

from __future__ import annotations

import numpy as np

from edgeprune.reconstruct.targets import Target


def parameters(target: Target, node, nodes) -> tuple[np.ndarray, np.ndarray]:
    """The layer as an (outputs, columns) matrix on its regression rows, and its bias (zeros if none)."""
    weight = np.asarray(node.inputs[1].values)
    if target.op == "MatMul":
        matrix = weight.T
        has_bias = target.bias_add is not None
        values = np.asarray(nodes[target.bias_add].inputs[target.bias_index].values) if has_bias else None
    else:
        matrix = weight.T if transposed(target, node) else weight.reshape(weight.shape[0], -1)
        has_bias = len(node.inputs) > 2 and bool(node.inputs[2].name)
        values = np.asarray(node.inputs[2].values) if has_bias else None
    bias = values.reshape(-1) if values is not None else np.zeros(matrix.shape[0], weight.dtype)
    return matrix, bias


def store(target: Target, node, nodes, matrix: np.ndarray, bias: np.ndarray) -> None:
    """Write a fit back: the weight into the layer; the bias into it, or into the Add after a MatMul."""
    import onnx_graphsurgeon as gs

    weight = np.asarray(node.inputs[1].values)
    shaped = matrix.T if target.op == "MatMul" or transposed(target, node) else matrix.reshape(weight.shape)
    node.inputs[1] = gs.Constant(f"{node.name}.weight.refit", np.ascontiguousarray(shaped.astype(weight.dtype)))
    if target.op == "MatMul":
        if target.bias_add is not None:
            add = nodes[target.bias_add]
            old = np.asarray(add.inputs[target.bias_index].values)
            add.inputs[target.bias_index] = gs.Constant(
                f"{add.name}.bias.refit", bias.astype(old.dtype).reshape(old.shape)
            )
        return
    bias_constant = gs.Constant(f"{node.name}.bias.refit", bias.astype(weight.dtype))
    if len(node.inputs) > 2:
        node.inputs[2] = bias_constant
    else:
        node.inputs.append(bias_constant)


def transposed(target: Target, node) -> bool:
    return target.op == "Gemm" and not int(node.attrs.get("transB", 0))
