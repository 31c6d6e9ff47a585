"""The fits of `reconstruct.solve`, from sums streamed over the rows instead of the rows themselves.

`ridge_fit` needs only X^T X, X^T Y and the column sums of X and Y, which add up batch by batch, so a
layer's ridge fit, and its error, take memory set by the layer's size whatever the number of images. The
rectified refinement (`rectified_fit`: a ReLU after the layer) is not linear in the rows: each of its rounds
reads the rows once more, from a `Spool` (in memory within a budget, else in a temporary file). Both give
the fits of `solve` on the same rows, to floating-point rounding (tested).

The sums can also be filled from the consumer statistics scoring captured (`from_gram`), for a layer whose
inputs pruning did not change: its original outputs are then a linear function of those inputs, and the
fit needs no pass at all.
"""

from __future__ import annotations

import numpy as np

from edgeprune.linalg import SpdSolver

ROUNDS = 3  # rectified refinement rounds, as `solve.rectified_fit`


class Sums:
    """Uncentred sums over rows of (x, y): enough for a ridge fit with a bias, and for its error."""

    def __init__(self, columns: int, outputs: int) -> None:
        self.columns, self.outputs, self.n = columns, outputs, 0
        self.x_sum, self.y_sum = np.zeros(columns), np.zeros(outputs)
        self.xx, self.xy = np.zeros((columns, columns)), np.zeros((columns, outputs))
        self.yy = 0.0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        self.n += len(x64)
        self.x_sum += x64.sum(axis=0)
        self.xx += np.dot(x64.T, x64)  # np.dot spots X^T X and takes half the work (syrk)
        self.add_targets(x64, y64)

    def add_targets(self, x64: np.ndarray, y64: np.ndarray) -> None:
        """The y-side sums only (a rectified round refits the same rows to new targets)."""
        self.y_sum += y64.sum(axis=0)
        self.xy += x64.T @ y64
        self.yy += float(np.sum(y64 * y64))

    def retarget(self) -> Sums:
        """The same x-side sums (shared, not copied) with empty y-side ones."""
        other = Sums(0, self.outputs)
        other.columns, other.n, other.x_sum, other.xx = self.columns, self.n, self.x_sum, self.xx
        other.xy = np.zeros((self.columns, self.outputs))
        return other


class RidgeSolver:
    """`solve.ridge_fit` from `Sums`; the regularised Gram matrix is factored once for repeated fits."""

    def __init__(self, sums: Sums, ridge: float, intercept: bool) -> None:
        n = max(sums.n, 1)
        self.intercept = intercept
        self.x_mean = sums.x_sum / n if intercept else np.zeros(sums.columns)
        gram = sums.xx - n * np.outer(self.x_mean, self.x_mean) if intercept else sums.xx.copy()
        penalty = ridge * max(float(np.trace(gram)) / max(len(gram), 1), 1e-12)
        gram[np.diag_indices_from(gram)] += penalty
        self.factor = SpdSolver(gram)

    def fit(self, sums: Sums) -> tuple[np.ndarray, np.ndarray]:
        """(W (outputs, columns), b) of the ridge fit of the y-side of ``sums``."""
        n = max(sums.n, 1)
        y_mean = sums.y_sum / n if self.intercept else np.zeros(sums.outputs)
        cross = sums.xy - n * np.outer(self.x_mean, y_mean) if self.intercept else sums.xy
        weight = self.factor.solve(cross).T
        return weight, y_mean - weight @ self.x_mean


def linear_error(sums: Sums, weight: np.ndarray, bias: np.ndarray) -> tuple[float, float]:
    """(||Y - X W^T - b||^2, ||Y||^2) from the sums: the squared numerator and denominator of
    `solve.relative_error` without a ReLU."""
    w = weight.astype(np.float64)
    b = bias.astype(np.float64)
    residual = (
        sums.yy
        - 2.0 * float(np.sum(w.T * sums.xy))
        - 2.0 * float(b @ sums.y_sum)
        + float(np.sum((w @ sums.xx) * w))
        + 2.0 * float(b @ (w @ sums.x_sum))
        + sums.n * float(b @ b)
    )
    return max(residual, 0.0), sums.yy


def ratio(error: tuple[float, float]) -> float:
    """The relative error (a norm ratio) from (squared residual, squared target)."""
    return float(np.sqrt(error[0])) / max(float(np.sqrt(error[1])), 1e-12)


def rectified_rounds(
    solver: RidgeSolver,
    sums: Sums,
    rows,
    start: tuple[np.ndarray, np.ndarray],
    before: tuple[np.ndarray, np.ndarray],
) -> tuple[tuple[np.ndarray, np.ndarray], float, float]:
    """`solve.rectified_fit` from ``start`` (the plain ridge fit), reading the rows once per round.

    ``rows()`` yields (x, y, offset) chunks in order (offset None: no shortcut). Returns (the best fit,
    its relative error after the ReLU, the relative error of ``before`` after the ReLU)."""
    fits = [start]
    errors: list[float] = []
    before_error = float("nan")
    for round_ in range(ROUNDS + 1):
        weight, bias = fits[-1]
        targets = sums.retarget() if round_ < ROUNDS else None
        residual = norm = 0.0
        old_residual = 0.0
        for x, y, offset in rows():
            x64 = x.astype(np.float64)
            shift = 0.0 if offset is None else offset
            prediction = x64 @ weight.T + bias
            passed = np.maximum(y.astype(np.float64) + shift, 0.0)
            residual += float(np.sum((passed - np.maximum(prediction + shift, 0.0)) ** 2))
            norm += float(np.sum(passed * passed))
            if round_ == 0:
                old = x64 @ before[0].astype(np.float64).T + before[1]
                old_residual += float(np.sum((passed - np.maximum(old + shift, 0.0)) ** 2))
            if targets is not None:
                negative = (y + shift) < 0 if offset is not None else y < 0
                target = np.where(negative, np.minimum(prediction + shift, 0.0) - shift, y)
                targets.add_targets(x64, target)
        errors.append(float(np.sqrt(residual)) / max(float(np.sqrt(norm)), 1e-12))
        if round_ == 0:
            before_error = float(np.sqrt(old_residual)) / max(float(np.sqrt(norm)), 1e-12)
        if targets is not None:
            fits.append(solver.fit(targets))
    best = 0
    for i in range(1, len(errors)):
        if errors[i] < errors[best]:
            best = i
    return fits[best], errors[best], before_error


def from_gram(
    xx: np.ndarray, x_sum: np.ndarray, rows: int, weight: np.ndarray, bias: np.ndarray, kept: np.ndarray
) -> Sums:
    """The sums of (x[kept], y) where y = x W^T + b exactly (a layer's original outputs from all its original
    inputs x), from the Gram statistics of x alone: ``xx`` and ``x_sum`` over every column, ``weight``
    (outputs, columns) over the same columns, ``kept`` the columns the pruned layer still reads."""
    w, b = weight.astype(np.float64), bias.astype(np.float64)
    xw = xx[kept] @ w.T  # (kept columns, outputs): the sum of x_kept (x W^T)
    sums = Sums(0, len(w))
    sums.columns, sums.n, sums.x_sum, sums.xx = int(kept.sum()), rows, x_sum[kept].copy(), xx[np.ix_(kept, kept)]
    sums.y_sum = w @ x_sum + rows * b
    sums.xy = xw + np.outer(x_sum[kept], b)
    sums.yy = float(np.sum((w @ xx) * w)) + 2.0 * float(b @ (w @ x_sum)) + rows * float(b @ b)
    return sums
