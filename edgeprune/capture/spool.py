"""Spools: arrays streamed in batch by batch and read back in the same order, in memory while a shared
budget allows, in a temporary file beyond it.

Capture and reconstruction keep per-image data between passes over the calibration set: the original
model's outputs at the sampled sites, the rows of layers whose fit needs them more than once, the tensors
where one pass stops and the next one starts. Held in memory they grow with the number of images; a spool that would
take the budget past its limit writes to an anonymous temporary file instead (deleted when closed), so
the memory a reconstruction uses is set by the budget and the layer sizes, not by the images.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import numpy as np

DEFAULT_BUDGET_BYTES = 512 * 2**20  # in memory across all open spools; the rest goes to temporary files


class SpoolBudget:
    """The bytes spools may hold in memory, shared by every spool of one reconstruction."""

    def __init__(self, limit: int = DEFAULT_BUDGET_BYTES) -> None:
        self.limit, self.used = limit, 0

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; False (nothing reserved) when they do not fit."""
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give_back(self, size: int) -> None:
        self.used = max(self.used - size, 0)


class Spool:
    """Rows of one array (rows, *shape) appended in order, read back in the same order, as often as needed.

    ``expected_rows`` (how many rows will come, an estimate) decides once whether it lives in memory or on
    disk; ``chunks`` and ``reader`` give the rows back."""

    def __init__(self, shape: tuple[int, ...], dtype, expected_rows: int, budget: SpoolBudget) -> None:
        self.shape, self.dtype = tuple(int(d) for d in shape), np.dtype(dtype)
        self.row_bytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.reserved = expected_rows * self.row_bytes
        self.budget = budget
        self.in_memory = budget.take(self.reserved)
        if not self.in_memory:
            self.reserved = 0
        self.parts: list[np.ndarray] = []
        self.file = None if self.in_memory else tempfile.TemporaryFile(prefix="edgeprune-spool-")
        self.rows = 0

    def append(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=self.dtype)
        if values.shape[1:] != self.shape:
            raise ValueError(f"spool of rows {self.shape} given rows {values.shape[1:]}")
        if self.in_memory:
            self.parts.append(values.copy() if not values.flags.owndata else values)
        else:
            assert self.file is not None
            self.file.seek(0, 2)  # at the end, wherever a reader left the file's position
            values.tofile(self.file)  # straight from the array's buffer: no copy into bytes first
        self.rows += len(values)

    def chunks(self, rows: int = 4096) -> Iterator[np.ndarray]:
        """Every row in order, at most ``rows`` at a time (the parts as appended, when in memory)."""
        if self.in_memory:
            yield from list(self.parts)
            return
        reader = self.reader()
        done = 0
        while done < self.rows:
            count = min(rows, self.rows - done)
            yield reader(count)
            done += count

    def reader(self):
        """A function ``take(n)`` that returns the next ``n`` rows, from the first. Read in the sizes they
        were appended in (a pass over the same batches), rows held in memory are handed back without a copy."""
        if self.in_memory:
            parts, at = list(self.parts), [0, 0]  # next part, rows of it already taken

            def take_memory(count: int) -> np.ndarray:
                pieces = []
                while count > 0 and at[0] < len(parts):
                    part = parts[at[0]]
                    piece = part[at[1] : at[1] + count]
                    pieces.append(piece)
                    count -= len(piece)
                    at[1] += len(piece)
                    if at[1] >= len(part):
                        at[0], at[1] = at[0] + 1, 0
                return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

            return take_memory
        assert self.file is not None
        self.file.flush()
        handle, size, offset = self.file, int(np.prod(self.shape, dtype=np.int64)), [0]

        def take_file(count: int) -> np.ndarray:  # from its own offset: readers of one spool may interleave
            handle.seek(offset[0])
            rows = np.fromfile(handle, dtype=self.dtype, count=count * size).reshape((-1, *self.shape))
            offset[0] += rows.nbytes
            return rows

        return take_file

    def close(self) -> None:
        self.parts = []
        if self.file is not None:
            self.file.close()
            self.file = None
        self.budget.give_back(self.reserved)
        self.reserved = 0
