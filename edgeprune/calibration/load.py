"""`load_calibration`: one entry point from a path (image folder, .npz, .npy) to a checked `CalibrationSet`."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np

from edgeprune.calibration.dataset import CalibrationSet
from edgeprune.calibration.presets import LAYOUTS, resolve_settings
from edgeprune.calibration.validate import check_path
from edgeprune.errors import InputError
from edgeprune.graph import ModelGraph

logger = logging.getLogger(__name__)


def load_calibration(
    path: str | os.PathLike,
    model: ModelGraph,
    *,
    preset: str | None = None,
    resize: int | None = None,
    crop: int | None = None,
    color: str | None = None,
    scale: float | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    layout: str = "nchw",
    limit: int | None = None,
    seed: int = 0,
) -> CalibrationSet:
    """Open calibration data for ``model`` and check it against the model's inputs.

    Nothing is decoded beyond the first image (to check its preprocessed shape); samples are produced by
    :meth:`CalibrationSet.batches`. The preprocessing options apply to image folders only: arrays are fed
    as stored. ``limit`` keeps a deterministic, class-balanced subset of that many samples (drawn with
    ``seed``; all samples if there are fewer).
    """
    source = check_path(path)
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout '{layout}'; choose one of: {', '.join(LAYOUTS)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise InputError(f"--limit must be a whole number of at least 1, got {limit!r}")
    if source.is_dir():
        options = dict(resize=resize, crop=crop, color=color, scale=scale, mean=mean, std=std, layout=layout)
        calibration = _from_folder(source, model, preset, options, seed)
    elif source.suffix.lower() in (".npz", ".npy"):
        given = {
            "preset": preset,
            "resize": resize,
            "crop": crop,
            "color": color,
            "scale": scale,
            "mean": mean,
            "std": std,
            "layout": None if layout == "nchw" else layout,
        }
        used = [f"--{name}" for name, value in given.items() if value is not None]
        if used:
            raise InputError(
                f"{', '.join(used)} appl{'ies' if len(used) == 1 else 'y'} to image folders only, and {source.name} "
                "is fed as stored; drop those options or preprocess the arrays before saving them"
            )
        calibration = _from_arrays(source, model, seed)
    else:
        raise InputError(
            f"{source} is not an image folder, a .npz or a .npy file; pass one of those as calibration data"
        )
    if limit is not None:
        calibration = calibration.take(int(limit), seed)
        calibration = _with_note(calibration, limit=int(limit))
    logger.info(
        "calibration data: %d %s from %s%s",
        calibration.count,
        calibration.noun,
        source,
        f" in {len(calibration.class_names)} classes" if calibration.class_names else "",
    )
    return calibration


def _from_folder(source: Path, model: ModelGraph, preset: str | None, options: dict, seed: int) -> CalibrationSet:
    from edgeprune.calibration.images import open_image_folder

    name = model.input_names[0] if len(model.input_names) == 1 else None
    settings = resolve_settings(preset, model_channels=_model_channels(model, name, options["layout"]), **options)
    reader, folder = open_image_folder(source, model, settings)
    if preset is None and all(options[k] is None for k in ("scale", "mean", "std")):
        logger.warning("no preset and no --scale/--mean/--std: pixels are fed as floats in 0..255")
    preprocessing = settings.as_dict()
    if folder.classes:
        preprocessing["classes"] = folder.classes
    return CalibrationSet(
        source=str(source),
        input_names=(reader.input_name,),
        count=len(folder.files),
        labels=folder.labels,
        preprocessing=MappingProxyType(preprocessing),
        seed=seed,
        _reader=reader,
        _rows=np.arange(len(folder.files), dtype=np.int64),
        class_names=folder.classes,
    )


def _from_arrays(source: Path, model: ModelGraph, seed: int) -> CalibrationSet:
    from edgeprune.calibration.arrays import open_npy, open_npz

    if source.suffix.lower() == ".npz":
        reader, labels, count = open_npz(source, model)
    else:
        (reader, count), labels = open_npy(source, model), None
    preprocessing = {"kind": source.suffix.lower().lstrip("."), "applied": "none: arrays are fed as stored"}
    return CalibrationSet(
        source=str(source),
        input_names=tuple(model.input_names),
        count=count,
        labels=labels,
        preprocessing=MappingProxyType(preprocessing),
        seed=seed,
        _reader=reader,
        _rows=np.arange(count, dtype=np.int64),
    )


def _model_channels(model: ModelGraph, name: str | None, layout: str) -> int | None:
    """The static channel count of a 4-D single input, if declared; it picks the default colour."""
    shape = model.shapes.get(name) if name else None
    if shape is None or len(shape) != 4:
        return None
    channels = shape[1] if layout == "nchw" else shape[3]
    return channels if isinstance(channels, int) and channels > 0 else None


def _with_note(calibration: CalibrationSet, **notes: object) -> CalibrationSet:
    """Echo ``limit`` in the preprocessing record, so a report shows the subset was drawn."""
    from dataclasses import replace

    merged = {**calibration.preprocessing, **notes}
    return replace(calibration, preprocessing=MappingProxyType(merged))
