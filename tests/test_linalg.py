"""Cholesky inverses and solves against numpy's LU ones, the fallback for a matrix that is not positive
definite, and that the input is never changed."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.linalg import SpdSolver, spd_inverse


def _gram(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n + 7, n))
    return rows.T @ rows + 1e-3 * np.eye(n)


@pytest.mark.parametrize("n", [1, 3, 511, 512, 513, 1100])  # one tile, its edges, and several tiles
def test_inverse_matches_lu_and_is_exactly_symmetric(n):
    gram = _gram(n, n)
    before = gram.copy()
    inverse = spd_inverse(gram)
    expected = np.linalg.inv(before)
    assert np.array_equal(gram, before)
    assert inverse.flags["C_CONTIGUOUS"]
    assert np.array_equal(inverse, inverse.T)
    assert np.max(np.abs(inverse - expected)) <= 1e-10 * np.max(np.abs(expected))
    assert np.allclose(inverse @ before, np.eye(n), atol=1e-8)


def test_solver_matches_lu_for_vectors_and_matrices():
    gram = _gram(40, 0)
    right = np.random.default_rng(1).standard_normal((40, 5))
    solver = SpdSolver(gram)
    assert np.allclose(solver.solve(right), np.linalg.solve(gram, right), rtol=1e-10, atol=1e-12)
    assert np.allclose(solver.solve(right[:, 0]), np.linalg.solve(gram, right[:, 0]), rtol=1e-10, atol=1e-12)


def test_not_positive_definite_falls_back_to_lu():
    matrix = np.array([[2.0, 0.0, 0.0], [0.0, -1.0, 0.5], [0.0, 0.5, 3.0]])
    inverse = spd_inverse(matrix)
    assert np.allclose(inverse, np.linalg.inv(matrix))
    assert np.array_equal(inverse, inverse.T)
    right = np.array([1.0, 2.0, 3.0])
    assert np.allclose(SpdSolver(matrix).solve(right), np.linalg.solve(matrix, right))
