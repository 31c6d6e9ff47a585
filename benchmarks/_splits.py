"""Disjoint Fashion-MNIST splits for choosing and reporting: calibration and validation images from the
TRAIN split (no image in both), test images from the TEST split; and single-threaded runs on shared cores."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from _data import calibration_set
from fashion_mnist import load_split, normalise


def single_thread() -> None:
    """One thread for ONNX Runtime, torch and BLAS: the benchmarks share two cores with other work."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    from edgeprune import runtime

    options = runtime._session_options

    def one_thread(threads=None):
        return options(threads or 1)

    runtime._session_options = one_thread
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


@dataclass(frozen=True)
class Splits:
    model: object
    analysis: object
    fit: object  # calibration: scoring, search, reconstruction
    validation: object  # train images no calibration saw: choosing
    test: object  # the test split: reporting


def splits(model_path, calib: int, validation: int, test: int, seed: int) -> Splits:
    """``calib`` and ``validation`` disjoint seeded images of the train split, the first ``test`` test images
    (all 10,000 by default in the benchmarks)."""
    from edgeprune.analysis import analyze
    from edgeprune.graph import load_model

    model = load_model(model_path)
    images, labels = load_split("train")
    order = np.random.default_rng(seed).permutation(len(images))
    fit_rows, val_rows = np.sort(order[:calib]), np.sort(order[calib : calib + validation])
    test_images, test_labels = load_split("test")
    sets = [
        calibration_set(model, normalise(images[rows]), labels[rows]) if len(rows) else None
        for rows in (fit_rows, val_rows)
    ]
    test_set = calibration_set(model, normalise(test_images[:test]), test_labels[:test]) if test else None
    return Splits(model, analyze(model), sets[0], sets[1], test_set)
