"""Benchmark data: Fashion-MNIST splits as calibration sets (the Debian dataset package, else the bundled sample)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Experiment:
    """A reference model, its channel analysis, calibration images from the train split and test images."""

    model: object  # ModelGraph
    analysis: object  # ChannelAnalysis
    fit: object  # CalibrationSet, train split
    test: object  # CalibrationSet, test split
    fit_source: str
    test_source: str


def experiment(model_path, calib_images: int, test_images: int, seed: int) -> Experiment:
    """What the accuracy benchmarks share: calibrate on the train split, judge on the test split."""
    from edgeprune.analysis import analyze
    from edgeprune.graph import load_model

    model = load_model(model_path)
    fit_x, fit_y, fit_source = split_arrays("train", calib_images, seed)
    test_x, test_y, test_source = split_arrays("test", test_images, seed)
    return Experiment(model, analyze(model), calibration_set(model, fit_x, fit_y),
                      calibration_set(model, test_x, test_y), fit_source, test_source)
