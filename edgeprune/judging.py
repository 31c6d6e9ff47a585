"""Task-aware measures of a pruned model's outputs against the original's, streamed batch by batch.

A classifier is judged by top-1 agreement, but a segmentation head, a text-detection probability map or an
OCR sequence head has no single class per image: agreement there is per pixel, per region or per decoded
string. Each task below is a small accumulator of integer counts (sums over images, so memory stays flat
in the number of images and two shards' counts add up to the whole set's), fed with the first model
output of both models, batch by batch.

Every measure here scores the pruned model against the original, so the original judged against itself
scores 1 on all of them (accuracy with labels is the one exception, and it is only for `classify`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeprune.errors import InputError

TASKS = ("classify", "segment", "detect-map", "sequence", "regress")

# the measure that guards and goals judge each task by (None: only the relative output error)
HEADLINE = {
    "classify": "agreement",
    "segment": "miou",
    "detect-map": "iou",
    "sequence": "sequence-match",
    "regress": None,
}


def fitting_tasks(shape: Sequence[object]) -> tuple[str, ...]:
    """The tasks whose measures can be computed on an output of ``shape`` (samples on axis 0).

    classify: N x C or N x C x 1 x 1, with C > 1;
    segment: N x K x H x W with K > 1; detect-map: N x 1 x H x W; sequence: N x T x C with C > 1;
    regress: any shape. Unknown (symbolic) dimensions fit nothing that needs them.
    """
    dims = tuple(shape)
    channels = dims[1] if len(dims) > 1 and isinstance(dims[1], int) else None
    fits = []
    # N x C x 1 x 1 is a classifier ending in a 1x1 conv without a flatten (N x T x 1 is a per-step value)
    if channels is not None and channels > 1 and (len(dims) == 2 or len(dims) == 4 and dims[2:] == (1, 1)):
        fits.append("classify")
    if len(dims) == 4 and channels is not None and channels > 1:
        fits.append("segment")
    if len(dims) == 4 and channels == 1:
        fits.append("detect-map")
    if len(dims) == 3 and isinstance(dims[2], int) and dims[2] > 1:
        fits.append("sequence")
    return (*fits, "regress")


def detect_task(shape: Sequence[object], values: np.ndarray | None = None) -> str:
    """The task an output looks like, from its shape and (for probability maps) its values.

    Rules, in order: N x C or N x C x 1 x 1 with C > 1 -> classify; rank 4 with C > 1 -> segment; rank 4
    with C == 1 and every value of the first batch in [0, 1] -> detect-map; rank 3 with C > 1 -> sequence
    (N x T x C); anything else (N x 1, N x T x 1, rank 1 or 5) -> regress. The shape alone cannot tell class
    scores from real-valued outputs (an N x 3 x H x W image-to-image model looks like a 3-class
    segmentation head, an N x 4 box regressor like a classifier): pass ``task`` to say so.
    """
    fits = fitting_tasks(shape)
    if "classify" in fits:
        return "classify"
    if "segment" in fits:
        return "segment"
    if "detect-map" in fits and values is not None and values.size and 0.0 <= values.min() and values.max() <= 1.0:
        return "detect-map"
    return "sequence" if "sequence" in fits else "regress"


def check_task_name(task: str) -> None:
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def check_task_fits(task: str, output: str, shape: Sequence[object]) -> None:
    """A task that cannot be computed on the output is bad usage, said on one line before any judging."""
    fits = fitting_tasks(shape)
    if task not in fits:
        dims = " x ".join(["N", *(str(d) if isinstance(d, int) else "?" for d in tuple(shape)[1:])])
        raise InputError(
            f"task {task!r} does not fit the model's first output {output!r} of shape {dims}; "
            f"tasks that fit it: {', '.join(fits)}"
        )


class ClassifyJudge:
    """Top-1 agreement with the original; accuracy of both models where every batch has labels."""

    task = "classify"

    def __init__(self) -> None:
        self.images = self.agree = self.right_original = self.right_pruned = 0
        self.labelled = True

    def add(self, expected: np.ndarray, got: np.ndarray, labels: np.ndarray | None) -> None:
        top_original = np.argmax(expected.reshape(len(expected), -1), axis=1)
        top_pruned = np.argmax(got.reshape(len(got), -1), axis=1)
        self.images += len(expected)
        self.agree += int(np.sum(top_original == top_pruned))
        if labels is None:
            self.labelled = False
        else:
            self.right_original += int(np.sum(top_original == labels))
            self.right_pruned += int(np.sum(top_pruned == labels))

    def measures(self) -> dict[str, float]:
        if not self.images:
            return {}
        result = {"agreement": self.agree / self.images}
        if self.labelled:
            result["accuracy"] = self.right_pruned / self.images
            result["accuracy-original"] = self.right_original / self.images
        return result


class SegmentJudge:
    """Per-pixel argmax class maps: pixel agreement, and mIoU of the pruned map against the original's.

    Per class c, IoU = |pruned == c and original == c| / |pruned == c or original == c|; mIoU is the mean
    over the classes present in either map anywhere in the data (a class neither model ever predicts says
    nothing about the pruning). Intersections and unions are summed over all images before dividing, as
    segmentation benchmarks do, so small images do not weigh more than large ones.
    """

    task = "segment"

    def __init__(self, classes: int) -> None:
        self.classes = classes
        self.inter = np.zeros(classes, dtype=np.int64)
        self.count_original = np.zeros(classes, dtype=np.int64)
        self.count_pruned = np.zeros(classes, dtype=np.int64)
        self.pixels = self.agree = 0

    def add(self, expected: np.ndarray, got: np.ndarray, labels: np.ndarray | None) -> None:
        original, pruned = np.argmax(expected, axis=1).ravel(), np.argmax(got, axis=1).ravel()
        same = original == pruned
        self.pixels += original.size
        self.agree += int(np.sum(same))
        self.inter += np.bincount(original[same], minlength=self.classes)
        self.count_original += np.bincount(original, minlength=self.classes)
        self.count_pruned += np.bincount(pruned, minlength=self.classes)

    def measures(self) -> dict[str, float]:
        if not self.pixels:
            return {}
        union = self.count_original + self.count_pruned - self.inter
        present = union > 0
        return {
            "pixel-agreement": self.agree / self.pixels,
            "miou": float(np.mean(self.inter[present] / union[present])),
        }


class DetectMapJudge:
    """Probability maps (e.g. a DB text detector's): both maps are thresholded (positive where the value
    exceeds ``threshold``, as DB's post-processing does) and the pruned mask is scored against the
    original's. Where neither mask has a positive pixel anywhere, IoU and F1 are 1: nothing was lost."""

    task = "detect-map"

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold
        self.tp = self.fp = self.fn = self.pixels = 0

    def add(self, expected: np.ndarray, got: np.ndarray, labels: np.ndarray | None) -> None:
        original, pruned = expected > self.threshold, got > self.threshold
        self.tp += int(np.sum(original & pruned))
        self.fp += int(np.sum(pruned & ~original))
        self.fn += int(np.sum(original & ~pruned))
        self.pixels += original.size

    def measures(self) -> dict[str, float]:
        if not self.pixels:
            return {}
        wrong = self.fp + self.fn
        return {
            "iou": self.tp / (self.tp + wrong) if self.tp + wrong else 1.0,
            "f1": 2 * self.tp / (2 * self.tp + wrong) if self.tp + wrong else 1.0,
            "pixel-agreement": 1.0 - wrong / self.pixels,
        }


class SequenceJudge:
    """N x T x C per-step class scores (e.g. a CTC OCR head): per-step argmax agreement, and the share of
    samples whose greedy CTC decodings (repeats collapsed, then the ``blank`` class dropped) are equal.
    The decoded match is what a reader of the recognised text sees; step agreement shows smaller drifts."""

    task = "sequence"

    def __init__(self, blank: int = 0) -> None:
        self.blank = blank
        self.samples = self.steps = self.step_agree = self.matches = 0

    def add(self, expected: np.ndarray, got: np.ndarray, labels: np.ndarray | None) -> None:
        original, pruned = np.argmax(expected, axis=2), np.argmax(got, axis=2)
        self.samples += len(original)
        self.steps += original.size
        self.step_agree += int(np.sum(original == pruned))
        for a, b in zip(original, pruned):
            self.matches += int(np.array_equal(greedy_decode(a, self.blank), greedy_decode(b, self.blank)))

    def measures(self) -> dict[str, float]:
        if not self.samples:
            return {}
        return {"step-agreement": self.step_agree / self.steps, "sequence-match": self.matches / self.samples}


class RegressJudge:
    """Real-valued outputs have no measure but the relative output error, which `compare` always gives."""

    task = "regress"

    def add(self, expected: np.ndarray, got: np.ndarray, labels: np.ndarray | None) -> None:
        pass

    def measures(self) -> dict[str, float]:
        return {}


def greedy_decode(steps: np.ndarray, blank: int = 0) -> np.ndarray:
    """CTC greedy decoding of one sample's per-step classes: collapse runs of a class, then drop blanks."""
    steps = np.asarray(steps)
    if not steps.size:
        return steps
    starts = np.concatenate(([True], steps[1:] != steps[:-1]))
    return steps[starts & (steps != blank)]


def make_judge(task: str, shape: Sequence[object], *, threshold: float = 0.5, blank: int = 0):
    """The accumulator for ``task`` on an output of ``shape`` (the task must fit the shape)."""
    if task == "classify":
        return ClassifyJudge()
    if task == "segment":
        return SegmentJudge(int(shape[1]))  # type: ignore[call-overload]  # fits: the class axis is known
    if task == "detect-map":
        return DetectMapJudge(threshold)
    if task == "sequence":
        return SequenceJudge(blank)
    return RegressJudge()
