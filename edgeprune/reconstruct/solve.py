"""Ridge least squares with an unregularised bias column."""

from __future__ import annotations

import numpy as np


def ridge_fit(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """W (out, in) and b (out,) minimising ||Y - X W^T - b||^2 + lambda ||W||^2.

    lambda is ``ridge`` times the mean diagonal of X^T X (scale-free); centring X and Y handles the bias.
    """
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    x_mean, y_mean = x64.mean(axis=0), y64.mean(axis=0)
    xc, yc = x64 - x_mean, y64 - y64.mean(axis=0)
    gram = xc.T @ xc
    penalty = ridge * max(float(np.trace(gram)) / max(len(gram), 1), 1e-12)
    weight = np.linalg.solve(gram + penalty * np.eye(len(gram)), xc.T @ yc).T
    return weight, y_mean - weight @ x_mean


def relative_error(x: np.ndarray, y: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> float:
    residual = y.astype(np.float64) - (x.astype(np.float64) @ weight.T + bias)
    return float(np.linalg.norm(residual) / max(np.linalg.norm(y), 1e-12))


def rectified_fit(x: np.ndarray, y: np.ndarray, ridge: float, weight: np.ndarray, bias: np.ndarray,
                  rounds: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Refine a fit whose outputs go through a ReLU: where the target is negative, any negative prediction is
    as good as the target itself, so those entries are moved to min(prediction, 0) and the fit repeated.

    Each round can only lower the error after the ReLU on the fitted rows, so the returned fit is kept only
    if it does (measured after the ReLU against the original's).
    """
    def after_relu_error(w, b):
        return float(np.linalg.norm(np.maximum(x @ w.T + b, 0) - np.maximum(y, 0)))

    best, best_error = (weight, bias), after_relu_error(weight, bias)
    negative = y < 0
    for _ in range(rounds):
        prediction = x @ weight.T + bias
        target = np.where(negative, np.minimum(prediction, 0.0), y)
        weight, bias = ridge_fit(x, target, ridge)
        error = after_relu_error(weight, bias)
        if error < best_error:
            best, best_error = (weight, bias), error
    return best
