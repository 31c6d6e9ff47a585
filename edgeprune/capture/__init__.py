"""Capture: run the model on calibration data and stream what the scorers need."""

from edgeprune.capture.points import CapturePoint, capture_points
from edgeprune.capture.session import ActivationRunner, with_outputs
from edgeprune.capture.stats import ActivationStats, PointStats, capture_stats

__all__ = [
    "ActivationRunner",
    "ActivationStats",
    "CapturePoint",
    "PointStats",
    "capture_points",
    "capture_stats",
    "with_outputs",
]
