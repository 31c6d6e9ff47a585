"""Ridge least squares with an unregularised bias column."""

from __future__ import annotations

import numpy as np


def ridge_fit(x: np.ndarray, y: np.ndarray, ridge: float, intercept: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """W (out, in) and b (out,) minimising ||Y - X W^T - b||^2 + lambda ||W||^2.

    lambda is ``ridge`` times the mean diagonal of X^T X (scale-free); centring X and Y handles the bias.
    Without ``intercept`` (a layer with nowhere to put a bias) b is zero and nothing is centred.
    """
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    x_mean = x64.mean(axis=0) if intercept else np.zeros(x64.shape[1])
    y_mean = y64.mean(axis=0) if intercept else np.zeros(y64.shape[1])
    xc, yc = x64 - x_mean, y64 - y_mean
    gram = xc.T @ xc
    penalty = ridge * max(float(np.trace(gram)) / max(len(gram), 1), 1e-12)
    weight = np.linalg.solve(gram + penalty * np.eye(len(gram)), xc.T @ yc).T
    return weight, y_mean - weight @ x_mean


def relative_error(
    x: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    offset: np.ndarray | float = 0.0,
    rectified: bool = False,
) -> float:
    """||y - (x W^T + b)|| / ||y||; with ``rectified``, of relu(. + offset) on both sides: what a ReLU after
    the layer (and after an Add of ``offset``) passes on."""
    prediction = x.astype(np.float64) @ weight.T + bias
    target = y.astype(np.float64)
    if rectified:
        prediction, target = np.maximum(prediction + offset, 0.0), np.maximum(target + offset, 0.0)
    return float(np.linalg.norm(target - prediction)) / max(float(np.linalg.norm(target)), 1e-12)


def rectified_fit(
    x: np.ndarray,
    y: np.ndarray,
    ridge: float,
    weight: np.ndarray,
    bias: np.ndarray,
    offset: np.ndarray | float = 0.0,
    rounds: int = 3,
    intercept: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Refine a fit of ``y`` whose outputs, plus ``offset``, go through a ReLU: where ``y + offset`` is
    negative, any prediction that keeps the sum negative is as good as the target itself, so those entries
    are moved to min(prediction + offset, 0) - offset and the fit repeated.

    A round's fit is kept only if it lowers the error after the ReLU (see :func:`relative_error`).
    """
    best = (weight, bias)
    best_error = relative_error(x, y, weight, bias, offset, rectified=True)
    negative = (y + offset) < 0
    for _ in range(rounds):
        prediction = x @ weight.T + bias
        target = np.where(negative, np.minimum(prediction + offset, 0.0) - offset, y)
        weight, bias = ridge_fit(x, target, ridge, intercept)
        error = relative_error(x, y, weight, bias, offset, rectified=True)
        if error < best_error:
            best, best_error = (weight, bias), error
    return best
