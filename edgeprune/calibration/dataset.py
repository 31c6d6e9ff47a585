"""`CalibrationSet`: calibration samples as an immutable, seeded view that streams batch by batch.

A set never holds decoded samples. It holds a reader (which produces the rows it is asked for: decoding
image files, slicing a memory-mapped array) and the reader rows that belong to this set. `subset`,
`split` and `take` are therefore cheap views sharing one reader, and memory stays at one batch whatever
the number of images.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from edgeprune.calibration.validate import check_finite, check_held_out
from edgeprune.errors import InputError


class SampleReader(Protocol):
    """Produces model inputs for reader rows; shared by every view of one source."""

    noun: str  # "images" or "samples", for messages

    def read(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Inputs for ``rows`` (in that order), samples on axis 0, already in the model's dtype."""
        ...

    def describe(self, row: int) -> str:
        """How to name one row in an error, e.g. "image cat/003.png (sample 17)"."""
        ...


@dataclass(frozen=True)
class Batch:
    """One batch: ``indices`` are positions in the set it came from, so labels and reports line up."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True, eq=False)
class CalibrationSet:
    """Named model inputs (+ optional int64 labels) from one source, with the preprocessing applied.

    Positions ``0..count-1`` index this set; views made by :meth:`subset`, :meth:`split` and :meth:`take`
    renumber from 0 but keep reading the same source rows.
    """

    source: str
    input_names: tuple[str, ...]
    count: int
    labels: np.ndarray | None
    preprocessing: Mapping[str, object]
    seed: int
    _reader: SampleReader = field(repr=False)
    _rows: np.ndarray = field(repr=False)
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self._rows) != self.count:
            raise ValueError(f"count {self.count} does not match {len(self._rows)} rows")
        if self.labels is not None and len(self.labels) != self.count:
            raise ValueError(f"{len(self.labels)} labels for {self.count} samples")
        self._rows.setflags(write=False)
        if self.labels is not None:
            self.labels.setflags(write=False)

    def __len__(self) -> int:
        return self.count

    @property
    def noun(self) -> str:
        return self._reader.noun

    def batches(self, batch_size: int, indices: Sequence[int] | None = None) -> Iterator[Batch]:
        """Yield batches in order (``indices``' order if given, else 0..count-1), each sample once.

        Each batch is read (decoded) only when it is asked for, and checked for NaN/Inf as it is made.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InputError(f"batch size must be a whole number of at least 1, got {batch_size!r}")
        positions = self._positions(indices)
        return self._stream(positions, int(batch_size))

    def _stream(self, positions: np.ndarray, batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(positions), batch_size):
            chosen = positions[start : start + batch_size]
            rows = self._rows[chosen]
            inputs = self._reader.read(rows)
            check_finite(inputs, rows, self._reader.describe, self.source)
            labels = None if self.labels is None else self.labels[chosen]
            yield Batch(inputs=inputs, labels=labels, indices=chosen.copy())

    def subset(self, indices: Sequence[int] | np.ndarray) -> CalibrationSet:
        """A view of the given positions (unique), in the given order."""
        positions = self._positions(indices)
        if len(np.unique(positions)) != len(positions):
            raise ValueError("subset indices must be unique")
        return CalibrationSet(
            source=self.source,
            input_names=self.input_names,
            count=len(positions),
            labels=None if self.labels is None else self.labels[positions],
            preprocessing=self.preprocessing,
            seed=self.seed,
            _reader=self._reader,
            _rows=self._rows[positions],
            class_names=self.class_names,
        )

    def split(self, held_out: float | int, seed: int | None = None) -> tuple[CalibrationSet, CalibrationSet]:
        """Return ``(rest, held_out)``: disjoint, together the whole set, deterministic for a seed.

        ``held_out`` is a fraction in (0, 1) or a sample count. With labels the held-out part keeps each
        class's share (largest-remainder rounding), so accuracy judged on it is not skewed by the draw.
        """
        n = check_held_out(held_out, self.count)
        chosen = stratified_choice(self.count, n, self.labels, self.seed if seed is None else seed)
        mask = np.zeros(self.count, dtype=bool)
        mask[chosen] = True
        return self.subset(np.flatnonzero(~mask)), self.subset(np.flatnonzero(mask))

    def take(self, n: int, seed: int | None = None) -> CalibrationSet:
        """A deterministic subset of ``n`` samples (class shares kept); the whole set if ``n >= count``."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise InputError(f"the number of samples to take must be a whole number of at least 1, got {n!r}")
        if n >= self.count:
            return self
        return self.subset(stratified_choice(self.count, int(n), self.labels, self.seed if seed is None else seed))

    def require(self, needed: int, purpose: str = "") -> CalibrationSet:
        """Raise unless the set holds at least ``needed`` samples; return self so calls can chain."""
        if self.count < needed:
            why = f" for {purpose}" if purpose else ""
            raise InputError(
                f"calibration data {self.source} needs at least {needed} {self.noun}{why}, got {self.count}; "
                f"add {self.noun} or ask for fewer"
            )
        return self

    def _positions(self, indices: Sequence[int] | np.ndarray | None) -> np.ndarray:
        if indices is None:
            return np.arange(self.count, dtype=np.int64)
        positions = np.asarray(indices)
        if positions.size == 0:
            return np.zeros(0, dtype=np.int64)
        if positions.ndim != 1 or positions.dtype.kind not in "iu":
            raise ValueError("indices must be a 1-D sequence of integers")
        if positions.min() < 0 or positions.max() >= self.count:
            raise ValueError(f"indices must lie in 0..{self.count - 1}")
        return positions.astype(np.int64)


def stratified_choice(count: int, n: int, labels: np.ndarray | None, seed: int) -> np.ndarray:
    """``n`` distinct sorted positions drawn with ``seed``; per class in proportion when labels exist.

    Sorted so a subset reads its source in order (sequential file and mmap access).
    """
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.choice(count, size=n, replace=False)).astype(np.int64)
    classes, sizes = np.unique(labels, return_counts=True)
    exact = n * sizes / count
    quotas = np.floor(exact).astype(np.int64)
    short = n - int(quotas.sum())
    order = np.argsort(-(exact - quotas), kind="stable")  # largest remainders first, ties by class order
    quotas[order[:short]] += 1
    picked = [
        rng.choice(np.flatnonzero(labels == label), size=int(quota), replace=False)
        for label, quota in zip(classes, quotas)
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)
