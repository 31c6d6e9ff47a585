"""Judging a pruned model against the original on held-out data: a task-aware measure and the output error.

The task (`edgeprune.judging.TASKS`) is what the first model output is: class scores, a segmentation map,
a probability map, a sequence or plain values. It is detected from that output's shape and values
(`edgeprune.judging.detect_task`) unless the caller names it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from edgeprune.capture.session import ActivationRunner
from edgeprune.graph.model import ModelGraph
from edgeprune.judging import HEADLINE, TASKS, check_task_fits, check_task_name, detect_task, make_judge

__all__ = ["TASKS", "Comparison", "compare"]


@dataclass(frozen=True)
class Comparison:
    """``agreement``: share of images where both models' top-1 classes agree (classify only).
    ``output_error``: ||pruned - original|| / ||original|| over all outputs and images (every task).
    ``task``: what the first output was judged as; ``measures``: every measure of that task by name
    (classify: agreement, accuracy, accuracy-original; segment: pixel-agreement, miou; detect-map: iou, f1,
    pixel-agreement; sequence: step-agreement, sequence-match; regress: none), each in [0, 1], higher better.
    The first five fields keep their order, so positional construction stays as it was."""

    images: int
    agreement: float | None
    output_error: float
    accuracy_original: float | None
    accuracy_pruned: float | None
    task: str = "classify"
    measures: Mapping[str, float] = field(default_factory=dict)

    @property
    def accuracy_drop(self) -> float | None:
        if self.accuracy_original is None or self.accuracy_pruned is None:
            return None
        return self.accuracy_original - self.accuracy_pruned

    @property
    def measure(self) -> str | None:
        """The held-out measure that guards and goals judge by. classify: accuracy with labels, else top-1
        agreement with the original; segment: miou; detect-map: iou; sequence: sequence-match; None where
        the outputs have no such measure (regress: only the output error)."""
        if self.task == "classify":
            if self.accuracy_drop is not None:
                return "accuracy"
            return "agreement" if self.agreement is not None else None
        headline = HEADLINE.get(self.task)
        return headline if headline in self.measures else None

    @property
    def drop_points(self) -> float | None:
        """How many points (of 100) the pruned model loses on `measure` against the original. Every measure
        but accuracy compares the pruned model with the original, which scores 1 against itself, so the
        drop is 100 * (1 - measure); accuracy's is the difference of the two models' accuracies."""
        if self.measure is None:
            return None
        if self.measure == "accuracy" and self.accuracy_drop is not None:
            return 100.0 * self.accuracy_drop
        if self.measure == "agreement" and self.agreement is not None:
            return 100.0 * (1.0 - self.agreement)
        return 100.0 * (1.0 - self.measures[self.measure])

    def to_dict(self) -> dict:
        # by hand rather than asdict(): a read-only mapping (MappingProxyType) of measures cannot be deep-copied
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        return {
            **row,
            "measures": dict(self.measures),
            "accuracy_drop": self.accuracy_drop,
            "measure": self.measure,
            "drop_points": self.drop_points,
        }


def compare(
    original: ModelGraph,
    pruned: ModelGraph,
    data,
    *,
    batch_size: int = 64,
    provider: str = "cpu",
    task: str | None = None,
    threshold: float = 0.5,
    blank: int = 0,
) -> Comparison:
    """Run both models over ``data`` (a `CalibrationSet`) batch by batch and judge the pruned one.

    ``task`` (one of `TASKS`) overrides the detection from the original's first output; one that does not
    fit that output raises `InputError`. ``threshold`` binarises detect-map probabilities; ``blank`` is the
    CTC blank class of sequence outputs. Memory stays at one batch of outputs whatever the number of images.
    """
    return compare_all(
        original, [pruned], data, batch_size=batch_size, provider=provider, task=task, threshold=threshold, blank=blank
    )[0]


def compare_all(
    original: ModelGraph,
    candidates: Sequence[ModelGraph],
    data,
    *,
    batch_size: int = 64,
    provider: str = "cpu",
    task: str | None = None,
    threshold: float = 0.5,
    blank: int = 0,
) -> list[Comparison]:
    """`compare` of each of ``candidates`` with ``original``, from one pass of the original over ``data``."""
    if task is not None:
        check_task_name(task)
    outputs = list(original.output_names)
    head = outputs[0]
    reference = ActivationRunner(original, outputs, provider)
    runners = [ActivationRunner(candidate, outputs, provider) for candidate in candidates]
    judges: list = [None] * len(candidates)
    diff_sq, ref_sq = [0.0] * len(candidates), 0.0
    images = 0
    for batch in data.batches(batch_size):
        expected = reference.run(batch.inputs)
        ref_sq += sum(float(np.sum(expected[name].astype(np.float64) ** 2)) for name in outputs)
        for i, runner in enumerate(runners):
            got = runner.run(batch.inputs)
            for name in outputs:
                diff_sq[i] += float(np.sum((got[name].astype(np.float64) - expected[name]) ** 2))
            if judges[i] is None:  # the first batch shows the output's concrete shape (and values, for detection)
                judges[i] = _judge_for(task, head, expected[head].shape, expected[head], threshold, blank)
            judges[i].add(expected[head], got[head], batch.labels)
        images += len(batch.indices)
    return [_comparison(judge, diff, ref_sq, images, task, original, head) for judge, diff in zip(judges, diff_sq)]


def _comparison(judge, diff_sq: float, ref_sq: float, images: int, task, original: ModelGraph, head: str) -> Comparison:
    # no data: nothing measured, and the task is the named one or the one the declared shape suggests
    measures = judge.measures() if judge is not None else {}
    judged = judge.task if judge is not None else task or detect_task(tuple(original.shapes.get(head, ())))
    return Comparison(
        images=images,
        agreement=measures.get("agreement"),
        output_error=float(np.sqrt(diff_sq / ref_sq)) if ref_sq > 0 else float(np.sqrt(diff_sq)),
        accuracy_original=measures.get("accuracy-original"),
        accuracy_pruned=measures.get("accuracy"),
        task=judged,
        measures=measures,
    )


def _judge_for(task: str | None, output: str, shape, values: np.ndarray | None, threshold: float, blank: int):
    if task is None:
        task = detect_task(shape, values)
    else:
        check_task_fits(task, output, shape)
    return make_judge(task, shape, threshold=threshold, blank=blank)
