"""Benchmark data: Fashion-MNIST splits as calibration sets (the Debian dataset package, else the bundled sample)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from fashion_mnist import load_split, normalise

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "calibration" / "fashion-mnist" / "sample.npz"


def split_arrays(split: str, count: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``count`` seeded images of a Fashion-MNIST split, normalised as in training, with labels."""
    try:
        images, labels = load_split(split)
        source = f"Fashion-MNIST {split} split"
    except Exception:  # the dataset package is not installed: fall back to the bundled 500 test images
        data = np.load(SAMPLE)
        return data["input"][:count], data["labels"][:count], "bundled 500-image sample"
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(images), size=min(count, len(images)), replace=False))
    return normalise(images[pick]), labels[pick].astype(np.int64), source


def calibration_set(model, images: np.ndarray, labels: np.ndarray, folder: Path | None = None):
    """A CalibrationSet over in-memory arrays (written once as .npz, the format users give)."""
    from edgeprune.calibration import load_calibration

    folder = Path(folder or tempfile.mkdtemp(prefix="edgeprune-bench-"))
    path = folder / f"data-{len(images)}-{abs(hash(images.tobytes())) % 10**8}.npz"
    np.savez(path, input=images.astype(np.float32), labels=labels)
    return load_calibration(path, model)
