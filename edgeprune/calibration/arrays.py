"""Array sources: a `.npz` with one array per model input (+ optional ``labels``), or one `.npy`.

Arrays are fed exactly as stored (no preprocessing, no casts) so what was exported is what is scored.
A `.npy` is memory-mapped and only the rows of each batch are read; a `.npz` (a zip, which cannot be
memory-mapped) is read one array per input.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgeprune.calibration.validate import (
    PER_SAMPLE_KEYS,
    check_counts,
    check_dtype,
    check_labels,
    check_npz_keys,
    check_shape,
)
from edgeprune.errors import InputError
from edgeprune.graph import ModelGraph

_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile)


class ArrayReader:
    """Reads rows of named arrays (in memory or memory-mapped) in the model's native dtype."""

    noun = "samples"

    def __init__(self, arrays: Mapping[str, np.ndarray], dtypes: Mapping[str, np.dtype]):
        self.arrays, self.dtypes = dict(arrays), dict(dtypes)

    def read(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        # always a copy: a batch never aliases the memory map or the stored arrays, so callers may write to it
        return {
            name: np.array(_rows_of(array, rows), dtype=self.dtypes[name], order="C", copy=True)
            for name, array in self.arrays.items()
        }

    def describe(self, row: int) -> str:
        return f"sample {row}"


def _rows_of(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A contiguous ascending run is read as a slice (one sequential read of a memory map)."""
    if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and np.all(np.diff(rows) == 1):
        return array[int(rows[0]) : int(rows[-1]) + 1]
    return array[rows]


def open_npz(source: Path, model: ModelGraph) -> tuple[ArrayReader, np.ndarray | None, int]:
    """Open and check a .npz against the model; return the reader, the labels (or None) and the count."""
    names = model.input_names
    _check_magic(source)
    try:
        bundle = np.load(source, allow_pickle=False)
        if not isinstance(bundle, np.lib.npyio.NpzFile):
            raise InputError(f"{source} holds a single array, not a .npz archive; save it with np.savez")
        with bundle:
            check_npz_keys(bundle.files, names, source)
            arrays = {name: bundle[name] for name in names}
            extras = {key: bundle[key] for key in PER_SAMPLE_KEYS if key in bundle.files and key not in names}
    except InputError:
        raise
    except _READ_ERRORS as exc:
        raise InputError(
            f"{source} is not a readable .npz ({_first_line(exc)}); save it with np.savez, without object arrays"
        ) from exc
    dtypes = {name: _check_array(name, array, model) for name, array in arrays.items()}
    count = check_counts({name: len(array) for name, array in arrays.items()}, source)
    checked = {key: check_labels(values, count, source, key) for key, values in extras.items()}
    labels = checked.get("labels")
    return ArrayReader(arrays, dtypes), labels, count


def open_npy(source: Path, model: ModelGraph) -> tuple[ArrayReader, int]:
    """Memory-map a .npy that feeds a single-input model."""
    names = model.input_names
    if len(names) != 1:
        raise InputError(
            f"the model has {len(names)} inputs ({', '.join(names)}) but a .npy holds one array; "
            "give a .npz with one array per input name"
        )
    _check_magic(source)
    try:
        array = np.load(source, mmap_mode="r", allow_pickle=False)
    except _READ_ERRORS as exc:
        raise InputError(
            f"{source} is not a readable .npy ({_first_line(exc)}); save it with np.save, without object arrays"
        ) from exc
    if not isinstance(array, np.ndarray):
        array.close()
        raise InputError(f"{source} is a .npz archive, not a .npy file; rename it to .npz")
    dtype = _check_array(names[0], array, model)
    count = check_counts({names[0]: len(array)}, source)
    return ArrayReader({names[0]: array}, {names[0]: dtype}), count


def _check_magic(source: Path) -> None:
    """Refuse files that are neither a zip nor a .npy before NumPy guesses they are pickles."""
    try:
        with open(source, "rb") as handle:
            head = handle.read(6)
    except OSError as exc:
        raise InputError(f"cannot read {source} ({exc.strerror or exc}); check its permissions") from exc
    if not (head.startswith(b"PK") or head == b"\x93NUMPY"):
        kind = source.suffix.lower()
        raise InputError(
            f"{source} is not a NumPy {kind} file (it has no zip or .npy header); "
            f"save it with {'np.savez' if kind == '.npz' else 'np.save'}"
        )


def _check_array(name: str, array: np.ndarray, model: ModelGraph) -> np.dtype:
    if array.ndim == 0:
        raise InputError(f"input '{name}' is a scalar; store samples on axis 0")
    check_shape(name, array.shape, model, _array_hint)
    return check_dtype(name, array.dtype, model)


def _array_hint(axis: int) -> str:
    if axis == -1:
        return "store samples on axis 0 followed by the model's input axes"
    return "export the arrays at the model's input shape"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
