"""Throughput of the vectorised aura entropy and aura MI against naive implementations.

    python benchmarks/bench_aura.py [--batch 128] [--repeat 3]

Aura entropy: per-image, per-channel entropies of (batch, C, H, W) activations, quantisation included,
reported in activation values per second for
- vectorised: ``quantize_maps`` + ``aura_counts`` (one bincount per offset over all maps) + ``aura_entropy``;
- naive numpy: a Python loop over maps, numpy per map (min-max codes, ``np.add.at`` per offset);
- pure Python: a loop over maps, pixels and neighbours (timed on 2 images only, then per value).
Cross-aura MI: seconds for the channel importances of a layer pair (quantisation included), for the
one-matmul implementation (torch and numpy products), the per-pixel histogram baseline, and a naive
numpy loop over channel pairs and window offsets. Each time is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from edgeprune.maps import (
    aura_counts,
    aura_entropy,
    aura_mi_importance,
    cross_aura_counts,
    histogram_joint_counts,
    mutual_information,
    quantize_maps,
)

LEVELS = 8


def best_time(fn, repeat: int) -> tuple[float, object]:
    best, result = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def vectorised_entropy(maps: np.ndarray) -> np.ndarray:
    codes, dead = quantize_maps(maps, LEVELS)
    return aura_entropy(aura_counts(codes, LEVELS, dead))


def naive_numpy_entropy(maps: np.ndarray) -> np.ndarray:
    n, c, h, w = maps.shape
    out = np.zeros((n, c))
    for i in range(n):
        for j in range(c):
            m = maps[i, j].astype(np.float64)
            lo, hi = m.min(), m.max()
            if hi == lo:
                continue
            q = np.minimum(np.floor((m - lo) / (hi - lo) * LEVELS), LEVELS - 1).astype(np.int64)
            a = np.zeros((LEVELS, LEVELS))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    if dy or dx:
                        s = q[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
                        r = q[max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)]
                        np.add.at(a, (s.ravel(), r.ravel()), 1)
            p = a[a > 0] / a.sum()
            out[i, j] = -(p * np.log2(p)).sum()
    return out


def pure_python_entropy(maps: np.ndarray) -> np.ndarray:
    n, c, h, w = maps.shape
    out = np.zeros((n, c))
    for i in range(n):
        for j in range(c):
            vals = maps[i, j].tolist()
            lo, hi = min(map(min, vals)), max(map(max, vals))
            if hi == lo:
                continue
            q = [[min(int((v - lo) / (hi - lo) * LEVELS), LEVELS - 1) for v in row] for row in vals]
            a = [0] * (LEVELS * LEVELS)
            for y in range(h):
                for x in range(w):
                    for yy in range(max(0, y - 1), min(h, y + 2)):
                        for xx in range(max(0, x - 1), min(w, x + 2)):
                            if yy != y or xx != x:
                                a[q[y][x] * LEVELS + q[yy][xx]] += 1
            total = sum(a)
            out[i, j] = -sum(k / total * math.log2(k / total) for k in a if k)
    return out


def naive_cross_mi(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    (cx, dx), (cy, dy) = quantize_maps(x, LEVELS), quantize_maps(y, LEVELS)
    n, nx, h, w = cx.shape
    ny = cy.shape[1]
    counts = np.zeros((nx, ny, LEVELS * LEVELS), dtype=np.int64)
    cx, cy = cx.astype(np.int64), cy.astype(np.int64)
    for i in range(nx):
        for j in range(ny):
            alive = ~(dx[:, i] | dy[:, j])
            a, b = cx[alive, i], cy[alive, j]
            for oy in (-1, 0, 1):
                for ox in (-1, 0, 1):
                    s = a[:, max(0, -oy) : h - max(0, oy), max(0, -ox) : w - max(0, ox)]
                    r = b[:, max(0, oy) : h - max(0, -oy), max(0, ox) : w - max(0, -ox)]
                    counts[i, j] += np.bincount((s * LEVELS + r).ravel(), minlength=LEVELS * LEVELS)
    return mutual_information(counts.reshape(nx, ny, LEVELS, LEVELS)).sum(axis=1)


def fast_cross_mi(x: np.ndarray, y: np.ndarray, backend: str, window: bool = True) -> np.ndarray:
    (cx, dx), (cy, dy) = quantize_maps(x, LEVELS), quantize_maps(y, LEVELS)
    count = cross_aura_counts if window else histogram_joint_counts
    return aura_mi_importance(count(cx, cy, LEVELS, dx, dy, backend=backend))


def entropy_table(batch: int, repeat: int) -> None:
    print(f"Aura entropy, G={LEVELS}, batch {batch}: activation values per second (speed-up vs naive numpy)")
    columns = ("vectorised", "naive numpy", "pure Python")
    print(f"{'maps':>12} {'values':>10} " + " ".join(f"{c:>14}" for c in columns) + f" {'speed-up':>9}")
    rng = np.random.default_rng(0)
    for c, hw in ((16, 28), (32, 14), (64, 7)):
        maps = np.maximum(rng.standard_normal((batch, c, hw, hw)), 0).astype(np.float32)
        values = maps.size
        t_fast, fast = best_time(lambda: vectorised_entropy(maps), repeat)
        t_naive, naive = best_time(lambda: naive_numpy_entropy(maps), 1)
        small = maps[:2]
        t_py, slow = best_time(lambda: pure_python_entropy(small), 1)
        if not (np.allclose(fast, naive, atol=1e-9) and np.allclose(fast[:2], slow, atol=1e-9)):
            raise AssertionError(f"implementations disagree for {c}x{hw}x{hw}")
        print(
            f"{f'{c}x{hw}x{hw}':>12} {values:>10,} {values / t_fast:>14,.0f} {values / t_naive:>14,.0f} "
            f"{small.size / t_py:>14,.0f} {t_naive / t_fast:>8.0f}x"
        )


def mi_table(batch: int, repeat: int) -> None:
    print(f"\nCross-aura MI importances (quantisation included), G={LEVELS}, batch {batch}: seconds")
    names = ("aura-mi torch", "aura-mi numpy", "hist-mi torch", "naive pairs")
    print(f"{'layer pair':>18} " + " ".join(f"{name:>14}" for name in names))
    rng = np.random.default_rng(1)
    for c, hw in ((64, 7), (16, 28)):
        x = np.maximum(rng.standard_normal((batch, c, hw, hw)), 0).astype(np.float32)
        y = np.maximum(rng.standard_normal((batch, c, hw, hw)), 0).astype(np.float32)
        fast_cross_mi(x[:2], y[:2], "torch")  # warm-up: the first call imports torch
        t_torch, ref = best_time(lambda: fast_cross_mi(x, y, "torch"), repeat)
        t_numpy, same = best_time(lambda: fast_cross_mi(x, y, "numpy"), repeat)
        t_hist, _ = best_time(lambda: fast_cross_mi(x, y, "torch", window=False), repeat)
        t_naive, naive = best_time(lambda: naive_cross_mi(x, y), 1)
        if not (np.array_equal(ref, same) and np.allclose(ref, naive, atol=1e-9)):
            raise AssertionError(f"implementations disagree for {c}x{c} at {hw}x{hw}")
        times = (t_torch, t_numpy, t_hist, t_naive)
        print(f"{f'{c}x{c} @ {hw}x{hw}':>18} " + " ".join(f"{t:>14.3f}" for t in times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    entropy_table(args.batch, args.repeat)
    mi_table(args.batch, args.repeat)


if __name__ == "__main__":
    main()
