"""Every check on calibration data, each failing with one line that says what does not match and what to do.

Bad calibration data rarely crashes a pruning run; it produces confident scores on garbage. So the
checks are strict and early: against the model's declared inputs when the data is opened, and for
NaN/Inf on every batch as it is produced (a folder is never decoded in full up front).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from edgeprune.calibration.presets import COLORS, LAYOUTS, ImageSettings
from edgeprune.errors import InputError
from edgeprune.graph import ModelGraph

#: Optional per-sample arrays a .npz may hold beside the inputs: class labels, and each sample's index in
#: the data set it was drawn from (kept for provenance, never fed to the model).
PER_SAMPLE_KEYS: tuple[str, ...] = ("labels", "indices")


def check_path(path: str | os.PathLike) -> Path:
    source = Path(path)
    if not source.exists():
        raise InputError(f"calibration data not found: {source}; check the path")
    return source


def check_settings(settings: ImageSettings) -> None:
    """Refuse options that cannot mean anything before any image is opened."""
    if settings.color not in COLORS:
        raise InputError(f"unknown colour '{settings.color}'; choose one of: {', '.join(COLORS)}")
    if settings.layout not in LAYOUTS:
        raise InputError(f"unknown layout '{settings.layout}'; choose one of: {', '.join(LAYOUTS)}")
    for name, value in (("resize", settings.resize), ("crop", settings.crop)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InputError(f"--{name} must be a whole number of pixels of at least 1, got {value!r}")
    if not math.isfinite(settings.scale) or settings.scale == 0:
        raise InputError(f"--scale must be a finite non-zero number, got {settings.scale}")
    for name, values in (("mean", settings.mean), ("std", settings.std)):
        if values is None:
            continue
        if len(values) not in (1, settings.channels):
            raise InputError(
                f"--{name} has {len(values)} values but {settings.color} images have {settings.channels} "
                f"channel(s); give 1 or {settings.channels} values"
            )
        if not all(math.isfinite(v) for v in values) or (name == "std" and any(v == 0 for v in values)):
            raise InputError(f"--{name} values must be finite{' and non-zero' if name == 'std' else ''}, got {values}")


def static_dims(model: ModelGraph, name: str) -> tuple[int | str | None, ...] | None:
    """The model's declared shape of an input, or None when it declares none."""
    shape = model.shapes.get(name)
    return tuple(shape) if shape is not None else None


def format_shape(shape: Iterable[object]) -> str:
    return "x".join(str(d) if d not in (None, "") else "?" for d in shape)


def check_shape(name: str, shape: tuple[int, ...], model: ModelGraph, hint: Callable[[int], str]) -> None:
    """Compare a data shape (samples first) with the model's input; axis 0 is the sample axis, never compared.

    ``hint(axis)`` says what to do about a mismatch on that axis (or on the rank, with axis -1).
    """
    want = static_dims(model, name)
    if want is None:
        return
    if len(shape) != len(want):
        raise InputError(
            f"input '{name}' has rank {len(shape)} ({format_shape(shape)}) but the model wants rank {len(want)} "
            f"({format_shape(want)}); {hint(-1)}"
        )
    for axis in range(1, len(want)):
        expected = want[axis]
        if isinstance(expected, int) and expected > 0 and shape[axis] != expected:
            raise InputError(
                f"input '{name}' axis {axis} is {shape[axis]} but the model wants {expected}; {hint(axis)}"
            )


def check_dtype(name: str, dtype: np.dtype, model: ModelGraph) -> np.dtype:
    """Return the native dtype to feed; refuse any conversion (a silent cast can change results)."""
    native = np.dtype(dtype).newbyteorder("=")
    want = model.dtypes.get(name)
    if want is not None and native != np.dtype(want):
        raise InputError(
            f"input '{name}' is {native} but the model wants {np.dtype(want)}; convert it "
            f"(e.g. array.astype(np.{np.dtype(want).name})) and save it again"
        )
    return native


def check_npz_keys(keys: Iterable[str], input_names: tuple[str, ...], source: Path) -> None:
    present = set(keys)
    missing = [n for n in input_names if n not in present]
    if missing:
        raise InputError(
            f"{source} has no array for input '{missing[0]}'; the model's inputs are {', '.join(input_names)} "
            f"(the file holds: {', '.join(sorted(present)) or 'nothing'}); save one array per input name"
        )
    extra = sorted(present - set(input_names) - set(PER_SAMPLE_KEYS))
    if extra:
        raise InputError(
            f"{source} holds arrays the model has no input for: {', '.join(extra)}; the model's inputs are "
            f"{', '.join(input_names)} (plus optional 'labels' and 'indices'); remove or rename them"
        )


def check_counts(counts: Mapping[str, int], source: Path) -> int:
    """All inputs must hold the same number of samples (axis 0); return it."""
    values = set(counts.values())
    if len(values) > 1:
        listed = ", ".join(f"'{k}' {v}" for k, v in counts.items())
        raise InputError(f"inputs in {source} hold different sample counts ({listed}); give each the same count")
    count = values.pop() if values else 0
    if count == 0:
        raise InputError(f"{source} holds 0 samples; give at least one sample per input")
    return count


def check_labels(labels: np.ndarray, count: int, source: Path, key: str = "labels") -> np.ndarray:
    """Labels (class indices) or source indices: one non-negative integer per sample; return read-only int64."""
    if labels.ndim != 1 or len(labels) != count:
        raise InputError(
            f"'{key}' in {source} has shape {format_shape(labels.shape)} but there are {count} samples; "
            f"give one integer per sample"
        )
    if labels.dtype.kind not in "iu":
        raise InputError(f"'{key}' in {source} is {labels.dtype}, not integer; save it as integers (np.int64)")
    if count and labels.min() < 0:
        raise InputError(f"'{key}' in {source} has negative values; they must be indices 0, 1, 2, ...")
    out = labels.astype(np.int64)
    out.setflags(write=False)
    return out


def check_finite(
    inputs: Mapping[str, np.ndarray], rows: np.ndarray, describe: Callable[[int], str], source: str
) -> None:
    """Raise on the first sample of a batch that holds NaN or Inf, naming the input and the sample."""
    for name, values in inputs.items():
        if values.dtype.kind not in "fc" or len(values) == 0:
            continue
        finite = np.isfinite(values).reshape(len(values), -1).all(axis=1)
        if finite.all():
            continue
        first = int(np.argmin(finite))
        what = "NaN" if np.isnan(values[first]).any() else "Inf"
        raise InputError(
            f"input '{name}' holds {what} in {describe(int(rows[first]))} of {source}; fix or remove that sample"
        )


def check_held_out(held_out: float | int, count: int) -> int:
    """A held-out size as a sample count that leaves both parts non-empty."""
    if isinstance(held_out, bool) or not isinstance(held_out, (int, float, np.integer, np.floating)):
        raise InputError(f"held-out size must be a fraction or a count, got {held_out!r}")
    if isinstance(held_out, (float, np.floating)):
        if not 0 < held_out < 1:
            raise InputError(
                f"held-out fraction must be between 0 and 1 (exclusive), got {held_out}; pass an int for a count"
            )
        n = int(round(float(held_out) * count))
    else:
        n = int(held_out)
    if not 1 <= n <= count - 1:
        raise InputError(
            f"a held-out part of {held_out} leaves {n} of {count} samples held out; both parts need at least "
            f"one sample: add samples or change the held-out size"
        )
    return n
