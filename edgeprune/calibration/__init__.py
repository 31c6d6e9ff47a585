"""Calibration data as a typed, validated, seeded object that streams batch by batch.

``load_calibration(path, model, ...)`` opens an image folder (class sub-folders give labels), a ``.npz``
(one array per model input, optional ``labels``) or a ``.npy`` (single-input models), checks it against
the model, and returns a :class:`CalibrationSet`. Presets and formats: ``calibration/README.md``.
"""

from edgeprune.calibration.dataset import Batch, CalibrationSet
from edgeprune.calibration.images import IMAGE_EXTENSIONS
from edgeprune.calibration.load import load_calibration
from edgeprune.calibration.presets import PRESETS, ImageSettings, Preset, get_preset

__all__ = [
    "IMAGE_EXTENSIONS",
    "PRESETS",
    "Batch",
    "CalibrationSet",
    "ImageSettings",
    "Preset",
    "get_preset",
    "load_calibration",
]
