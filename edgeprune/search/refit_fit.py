"""One layer's refit inside `SequentialEvaluator`: the fit `reconstruct` makes (`reconstruct.refit._refit`),
on the masked network's rows, written back in the original layer's shape.

The masked layer still has every channel: its rows hold zeros for the removed inputs, which are left out of
the fit exactly as the pruned layer lacks them (the ridge penalty is scaled by the kept columns' energy, so
this matters), and only the kept outputs are fitted; removed outputs keep their weights (the masks zero
them downstream). The ridge and rectified fits are those of `reconstruct.solve`, the Gram matrix of the
rows inverted once for the rectified rounds.
"""

from __future__ import annotations

import numpy as np
import torch

from edgeprune.linalg import spd_inverse


class _Ridge:
    """min ||Y - X W^T - b||^2 + lambda ||W||^2 for any Y, X fixed: `ridge_fit`, with the inverse of the
    regularised Gram matrix computed once. The products with the rows run in float32 (the rows are float32
    activations), the inverse and the weights in float64."""

    def __init__(self, x: np.ndarray, ridge: float, intercept: bool) -> None:
        x = np.asarray(x, dtype=np.float32)
        self.x, self.intercept = x, intercept
        self.mean = x.mean(axis=0, dtype=np.float64) if intercept else np.zeros(x.shape[1])
        self.centred = x - self.mean.astype(np.float32)
        gram = (self.centred.T @ self.centred).astype(np.float64)
        penalty = ridge * max(float(np.trace(gram)) / max(len(gram), 1), 1e-12)
        self.inverse = spd_inverse(gram + penalty * np.eye(len(gram)))

    def fit(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y_mean = y.mean(axis=0) if self.intercept else np.zeros(y.shape[1])
        weight = (self.inverse @ (self.centred.T @ (y - y_mean).astype(np.float32))).T
        return weight, y_mean - weight @ self.mean

    def error(self, weight, bias, y, offset, rectified: bool) -> tuple[float, np.ndarray]:
        """`relative_error` of a fit, and its prediction."""
        prediction = self.x @ weight.T.astype(np.float32) + bias.astype(np.float32)
        got, want = prediction, y
        if rectified:
            got, want = np.maximum(prediction + offset, 0.0), np.maximum(y + offset, 0.0)
        return float(np.linalg.norm(want - got)) / max(float(np.linalg.norm(want)), 1e-12), prediction

    def rectified(self, y, weight, bias, offset, rounds: int = 3):
        """`rectified_fit` (negative targets, after the offset, need only stay negative), with its error."""
        best_error, prediction = self.error(weight, bias, y, offset, True)
        best = (weight, bias)
        negative = (y + offset) < 0
        for _ in range(rounds):
            weight, bias = self.fit(np.where(negative, np.minimum(prediction + offset, 0.0) - offset, y))
            error, prediction = self.error(weight, bias, y, offset, True)
            if error < best_error:
                best, best_error = (weight, bias), error
        return best[0], best[1], best_error


def _layer(target, graph, node: str, inputs: list):
    """(matrix (outputs, columns), bias, how to store a matrix back) of the layer as it stands."""
    weight = inputs[1].numpy().astype(np.float64)
    spec = next(step.spec for step in graph.steps if step.name == node)
    if target.op == "MatMul":
        bias = np.zeros(weight.shape[1])
        if target.bias_add is not None:
            add = next(step for step in graph.steps if step.name == target.bias_add)
            bias = graph.constants[add.inputs[target.bias_index]].numpy().astype(np.float64).reshape(-1)
        return weight.T, bias, lambda m: m.T
    transposed = target.op == "Gemm" and not int(spec.attrs.get("transB", 0))
    matrix = weight.T if transposed else weight.reshape(weight.shape[0], -1)
    has_bias = len(inputs) > 2 and inputs[2] is not None
    bias = inputs[2].numpy().astype(np.float64).reshape(-1) if has_bias else np.zeros(len(matrix))
    return matrix, bias, (lambda m: m.T) if transposed else (lambda m: m.reshape(weight.shape))


def _columns(target, analysis, keep, width: int) -> np.ndarray:
    """Which of the layer's ``width`` row columns the pruned layer keeps."""
    kept = analysis.kept_positions(target.input, keep)
    if kept is None:
        return np.ones(width, dtype=bool)
    if target.geometry is not None:
        kernel = target.geometry.kernel[0] * target.geometry.kernel[1]
        groups = target.geometry.groups
        per_group = len(kept) // groups
        return np.concatenate([np.repeat(kept[g * per_group : (g + 1) * per_group], kernel) for g in range(groups)])
    return kept


def fit_target(target, graph, node, inputs, rows, reference, addend, keep, analysis, ridge):
    # rows: (the layer's rows, the columns of its full-width rows they hold, or None for all of them)
    """(replacements {(node, input index): tensor} for the layer's refit, or None when `reconstruct` would
    keep its weights: no gain, or a depthwise conv that lost channels, which it leaves as it is; and the
    layer's relative error after it, as `reconstruct` reports it)."""
    rows, held = rows  # the rows, and the layer's columns they hold (None: every column)
    matrix, bias, store = _layer(target, graph, node, inputs)
    groups = target.geometry.groups if target.geometry is not None else 1
    out_size, width = len(matrix) // groups, matrix.shape[1]
    kept_out = np.asarray(target.kept_out, dtype=bool)
    columns = _columns(target, analysis, keep, width * groups)
    if int(kept_out.sum()) // groups == 0:
        return None, float("nan")
    offset = addend[:, kept_out] if addend is not None else np.zeros((1, int(kept_out.sum())))
    y = reference[:, kept_out] - offset
    new_matrix, new_bias = matrix.copy(), bias.copy()
    before = after = 0.0
    out_index = np.flatnonzero(kept_out)
    row_offset = 0
    for g in range(groups):
        outs = out_index[(out_index >= g * out_size) & (out_index < (g + 1) * out_size)]
        local = np.flatnonzero(columns[g * width : (g + 1) * width])
        wanted = g * width + local
        xs = rows[:, wanted if held is None else np.searchsorted(held, wanted)]
        span = slice(row_offset, row_offset + len(outs))
        row_offset += len(outs)
        ys, shift = y[:, span], offset[:, span]
        solver = _Ridge(xs, ridge, target.intercept)
        fitted_w, fitted_b = solver.fit(ys)
        if target.rectified:
            fitted_w, fitted_b, error = solver.rectified(ys, fitted_w, fitted_b, shift)
        else:
            error = solver.error(fitted_w, fitted_b, ys, shift, False)[0]
        before += solver.error(matrix[np.ix_(outs, local)], bias[outs], ys, shift, target.rectified)[0] ** 2
        after += error**2
        new_matrix[np.ix_(outs, local)] = fitted_w
        new_bias[outs] = fitted_b
    before, after = float(np.sqrt(before / groups)), float(np.sqrt(after / groups))
    if not after < before:
        return None, before
    weight = torch.from_numpy(np.ascontiguousarray(store(new_matrix)).astype(np.float32))
    if target.op == "MatMul":
        if target.bias_add is None:
            return {(node, 1): weight}, after
        return {(node, 1): weight, (target.bias_add, target.bias_index): _bias(new_bias, graph, target)}, after
    old = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
    shape = tuple(old.shape) if old is not None else (len(new_bias),)
    return {(node, 1): weight, (node, 2): torch.from_numpy(new_bias.reshape(shape).astype(np.float32))}, after


def _bias(values: np.ndarray, graph, target) -> torch.Tensor:
    add = next(step for step in graph.steps if step.name == target.bias_add)
    old = graph.constants[add.inputs[target.bias_index]]
    return torch.from_numpy(values.reshape(tuple(old.shape)).astype(np.float32))
