"""The order and the passes of a reconstruction: which layers are refitted from which pass over the data.

A layer's rows must come from the network whose earlier refits are done, so layers go in *levels*: a
layer's level is one more than the highest level among the refitted layers its input (or its residual
shortcut) depends on. One pass gives the rows of a whole level (`segments.SegmentedRun`: each pass computes
only what earlier passes did not), and all layers of a level are fitted from it: the same rows, order
of fits and arithmetic as refitting the layers one by one in topological order, since no layer of a level
reads another's output.

A layer whose inputs pruning did not change (nothing before it lost an input or was refitted) and whose
target is linear in them (no ReLU after it to refine the fit for) is fitted from the Gram statistics scoring
captured for it (`ConsumerGrams`), with no pass at all. The original tensors the layers are fitted to come
from the same capture pass where it kept them at these sites (`capture.references`), else from one pass of
the original model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgeprune.capture.references import in_batch, rows_at
from edgeprune.capture.rows import linear_rows, outputs_at, patches
from edgeprune.capture.spool import DEFAULT_BUDGET_BYTES, Spool, SpoolBudget
from edgeprune.reconstruct.levels import levels, sites
from edgeprune.reconstruct.segments import SegmentedRun
from edgeprune.reconstruct.streamed import RidgeSolver, Sums, linear_error, ratio, rectified_rounds
from edgeprune.reconstruct.targets import Target
from edgeprune.reconstruct.weights import parameters, store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduleSettings:
    """How reconstruction samples, fits and runs; ``memory``: bytes of per-image data held in memory across
    passes (the rest is spooled to temporary files)."""

    samples_per_image: int = 16
    ridge: float = 1e-3
    batch_size: int = 64
    provider: str = "cpu"
    seed: int = 0
    memory: int = DEFAULT_BUDGET_BYTES


@dataclass(frozen=True)
class LayerRefit:
    """One layer's fit, as the reconstruction report records it (a layer that cannot be refitted: no rows,
    NaN errors, not applied, and why in ``note``)."""

    node: str
    op: str
    rows: int
    columns: int
    error_before: float
    error_after: float
    applied: bool
    note: str = ""


@dataclass
class _Work:
    """One layer being refitted: its sums per conv group, and its spooled rows when a ReLU follows it."""

    target: Target
    parts: list[Sums] = field(default_factory=list)
    y: Spool | _KeptColumns | None = None  # the original model's outputs at the sampled sites
    rows: tuple[Spool, Spool, Spool | None] | None = None  # (x, y, shortcut) rows of a rectified fit
    reused: bool = False
    has_addend: bool = False


class Schedule:
    """Refits ``targets`` of the pruned ``graph`` (changed in place) level by level; `run` returns their fits."""

    def __init__(
        self,
        original,
        graph,
        targets,
        calibration,
        settings: ScheduleSettings,
        reuse=None,
        progress=None,
        references=None,
    ) -> None:
        self.original, self.graph, self.targets = original, graph, targets
        self.calibration, self.settings = calibration, settings
        self.nodes = {node.name: node for node in graph.nodes}
        self.budget = SpoolBudget(settings.memory)
        self.reuse = reuse or {}  # node -> Sums filled from the scoring statistics
        self.references = references or {}  # original tensor -> its `SiteRows` from the capture pass
        self.progress: Callable[[str, int, int], None] | None = progress
        self.passes = 0

    def run(self) -> list[LayerRefit]:
        works = [_Work(t, reused=t.node in self.reuse) for t in self.targets]
        tensors = set(self.graph.tensors())
        for work in works:
            self._positions(work.target)
            work.has_addend = work.target.addend is not None and work.target.addend in tensors
        self._original_outputs([w for w in works if not w.reused])
        order = levels(self.targets, self.graph)
        fitted: dict[str, LayerRefit] = {}
        pruned = SegmentedRun(self.graph, self.calibration, **self._run_options())
        try:
            for level in sorted(set(order)):
                batch = [w for w, at in zip(works, order) if at == level]
                pending = {w.target.node for w, at in zip(works, order) if at >= level}
                self._capture(pruned, [w for w in batch if not w.reused], pending)
                for work in batch:
                    fitted[work.target.node] = self._fit(work)
                    self._report(len(fitted), len(works))
        finally:
            pruned.close()
            for work in works:
                for spool in (work.y, *(work.rows or ())):
                    if spool is not None:
                        spool.close()
        self.passes += pruned.sessions
        return [fitted[t.node] for t in self.targets]

    def _run_options(self) -> dict:
        s = self.settings
        return {"batch_size": s.batch_size, "provider": s.provider, "budget": self.budget}

    def _report(self, done: int, total: int) -> None:
        if self.progress:
            self.progress("reconstruct", done, total)

    def _positions(self, target: Target) -> None:
        s = self.settings
        target.positions = sites(
            target, self.original.shapes[target.output], self.calibration.count, s.samples_per_image, s.seed
        )

    def _rows_per_image(self, target: Target) -> int:
        if target.positions is None:
            return 1
        return max(len(target.positions) // max(self.calibration.count, 1), 1)

    def _original_outputs(self, works: list[_Work]) -> None:
        """Every layer's original outputs at its sampled sites: the kept columns of the rows the capture pass
        kept where it kept them at the same sites, else from one pass of the original model (up to the last
        tensor needed), spooled."""
        passing = []
        for work in works:
            captured = self.references.get(work.target.reference)
            if captured is not None and captured.matches(work.target.positions, self.calibration.count):
                work.y = _KeptColumns(captured.spool, work.target.kept_out)
            else:
                passing.append(work)
        works = passing
        if not works:
            return
        run = SegmentedRun(self.original.gs_graph(), self.calibration, keep=False, **self._run_options())
        first = 0
        for batch, values in run.values(sorted({w.target.reference for w in works})):
            count = len(batch.indices)
            for work in works:
                y = _reference_rows(work.target, values[work.target.reference], first, count)
                if work.y is None:
                    expected = self._rows_per_image(work.target) * self.calibration.count
                    work.y = Spool(y.shape[1:], y.dtype, expected, self.budget)
                assert isinstance(work.y, Spool)  # made here: not one of the capture's
                work.y.append(y)
            first += count
        self.passes += run.sessions

    def _capture(self, run: SegmentedRun, works: list[_Work], pending: set[str]) -> None:
        """One pass of the pruned network for a level: each layer's rows summed (and spooled if rectified)."""
        if not works:
            return
        needed: list[str] = []
        for work in works:
            t = work.target
            needed.append(t.input)
            if work.has_addend and t.geometry is not None and t.addend is not None:
                needed.append(t.addend)
        readers = {id(w): w.y.reader() for w in works if w.y is not None}
        first = 0
        for batch, values in run.values(needed, pending):
            count = len(batch.indices)
            for work in works:
                x, s = self._input_rows(work, values, first, count)
                y = readers[id(work)](len(x))
                y = y - s if s is not None else y  # the residual sum minus what the shortcut now brings
                self._add(work, x, y, s)
            first += count

    def _input_rows(self, work: _Work, values, first: int, count: int):
        t = work.target
        x = values[t.input]
        if t.positions is None:  # a Gemm: every image's row
            return x.reshape(count, -1), None
        at = in_batch(t.positions, first, count)
        if t.channels_last:
            return linear_rows(x, first, at), None
        assert t.geometry is not None  # a conv: the other kinds returned above
        shortcut = outputs_at(values[t.addend], first, at) if work.has_addend and t.addend else None
        return patches(x, first, at, t.geometry), shortcut

    def _add(self, work: _Work, x: np.ndarray, y: np.ndarray, s: np.ndarray | None) -> None:
        groups = work.target.geometry.groups if work.target.geometry is not None else 1
        cols, outs = x.shape[1] // groups, y.shape[1] // groups
        if not work.parts:
            work.parts = [Sums(cols, outs) for _ in range(groups)]
            if work.target.rectified:
                expected = self._rows_per_image(work.target) * self.calibration.count
                work.rows = (
                    Spool(x.shape[1:], x.dtype, expected, self.budget),
                    Spool(y.shape[1:], y.dtype, expected, self.budget),
                    Spool(s.shape[1:], s.dtype, expected, self.budget) if s is not None else None,
                )
        for g, part in enumerate(work.parts):
            part.add(x[:, g * cols : (g + 1) * cols], y[:, g * outs : (g + 1) * outs])
        if work.rows is not None:
            for spool, values in zip(work.rows, (x, y, s)):
                if spool is not None and values is not None:
                    spool.append(values)

    def _fit(self, work: _Work) -> LayerRefit:
        """`refit._refit`'s fit: ridge (refined for a ReLU after it) per conv group, kept if it lowers the error."""
        t, ridge = work.target, self.settings.ridge
        node = self.nodes[t.node]
        sums = self.reuse.get(t.node, work.parts)
        if isinstance(sums, Sums):
            sums = [sums]
        matrix, bias = parameters(t, node, self.nodes)
        groups = len(sums)
        new_matrix, new_bias = matrix.astype(np.float64).copy(), bias.astype(np.float64).copy()
        before = after = 0.0
        rows_out = matrix.shape[0] // groups
        for g, part in enumerate(sums):
            out = slice(g * rows_out, (g + 1) * rows_out)
            solver = RidgeSolver(part, ridge, t.intercept)
            weight, shift = solver.fit(part)
            if t.rectified and work.rows is not None:
                rows = _group_rows(work.rows, g, part.columns, rows_out)
                (weight, shift), error_after, error_before = rectified_rounds(
                    solver, part, rows, (weight, shift), (matrix[out], bias[out])
                )
            else:
                error_before = ratio(linear_error(part, matrix[out], bias[out]))
                error_after = ratio(linear_error(part, weight, shift))
            before += error_before**2
            after += error_after**2
            new_matrix[out], new_bias[out] = weight, shift
        before, after = np.sqrt(before / groups), np.sqrt(after / groups)
        applied = bool(after < before)
        if applied:
            store(t, node, self.nodes, new_matrix, new_bias)
        logger.info("refit %s: relative error %.4f -> %.4f%s", t.node, before, after, "" if applied else " (kept)")
        aim = (
            "the residual sum"
            if work.has_addend
            else "its output plus the bias Add after it"
            if t.bias_add
            else "its output"
        )
        aim += " after the ReLU" if t.rectified else ""
        rows = sums[0].n
        return LayerRefit(
            t.node,
            t.op,
            rows,
            sums[0].columns * groups,
            float(before),
            float(min(before, after)),
            applied,
            f"fitted to {aim}",
        )


class _KeptColumns:
    """A tensor's rows kept by the capture pass (every channel), read as a layer's kept outputs' columns;
    the spool belongs to the capture's statistics, which close it (``close`` here leaves it open)."""

    def __init__(self, spool, kept: np.ndarray) -> None:
        self.spool, self.kept = spool, None if bool(np.all(kept)) else np.flatnonzero(kept)

    def reader(self):
        take = self.spool.reader()
        return take if self.kept is None else (lambda count: take(count)[:, self.kept])

    def close(self) -> None:
        pass


def _reference_rows(target: Target, values: np.ndarray, first: int, count: int) -> np.ndarray:
    """The original tensor a layer must match, at its sampled sites and on its kept outputs."""
    kept = np.compress(target.kept_out, values, axis=-1 if target.channels_last else 1)
    at = None if target.positions is None else in_batch(target.positions, first, count)
    return rows_at(kept, target.layout, first, at)


def _group_rows(spools, group: int, columns: int, outputs: int):
    """A function yielding (x, y, shortcut) chunks of one conv group's rows, in order."""
    x_spool, y_spool, s_spool = spools
    cols, outs = slice(group * columns, (group + 1) * columns), slice(group * outputs, (group + 1) * outputs)

    def rows():
        y_read = y_spool.reader()
        s_read = s_spool.reader() if s_spool is not None else None
        for x in x_spool.chunks():
            y = y_read(len(x))
            s = s_read(len(x)) if s_read is not None else None
            yield x[:, cols], y[:, outs], (s[:, outs] if s is not None else None)

    return rows
