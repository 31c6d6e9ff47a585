"""Judging a pruned model against the original on held-out data: agreement, output error, accuracy."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgeprune.capture.session import ActivationRunner
from edgeprune.graph.model import ModelGraph


@dataclass(frozen=True)
class Comparison:
    """``agreement``: share of images where both models' top-1 classes agree (classifiers only).
    ``output_error``: ||pruned - original|| / ||original|| over all outputs and images."""

    images: int
    agreement: float | None
    output_error: float
    accuracy_original: float | None
    accuracy_pruned: float | None

    @property
    def accuracy_drop(self) -> float | None:
        if self.accuracy_original is None or self.accuracy_pruned is None:
            return None
        return self.accuracy_original - self.accuracy_pruned

    def to_dict(self) -> dict:
        return {**asdict(self), "accuracy_drop": self.accuracy_drop}


def compare(original: ModelGraph, pruned: ModelGraph, data, *, batch_size: int = 64, provider: str = "cpu") -> Comparison:
    outputs = list(original.output_names)
    reference = ActivationRunner(original, outputs, provider)
    candidate = ActivationRunner(pruned, outputs, provider)
    classifier = _is_classifier(original, outputs[0])
    diff_sq = ref_sq = 0.0
    agree = right_original = right_pruned = images = 0
    for batch in data.batches(batch_size):
        expected, got = reference.run(batch.inputs), candidate.run(batch.inputs)
        for name in outputs:
            diff_sq += float(np.sum((got[name].astype(np.float64) - expected[name]) ** 2))
            ref_sq += float(np.sum(expected[name].astype(np.float64) ** 2))
        images += len(batch.indices)
        if classifier:
            top_original = np.argmax(expected[outputs[0]], axis=1)
            top_pruned = np.argmax(got[outputs[0]], axis=1)
            agree += int(np.sum(top_original == top_pruned))
            if batch.labels is not None:
                right_original += int(np.sum(top_original == batch.labels))
                right_pruned += int(np.sum(top_pruned == batch.labels))
    labelled = classifier and data.labels is not None
    return Comparison(
        images=images,
        agreement=agree / images if classifier and images else None,
        output_error=float(np.sqrt(diff_sq / ref_sq)) if ref_sq > 0 else float(np.sqrt(diff_sq)),
        accuracy_original=right_original / images if labelled and images else None,
        accuracy_pruned=right_pruned / images if labelled and images else None,
    )


def _is_classifier(model: ModelGraph, output: str) -> bool:
    shape = model.shapes.get(output, ())
    return len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 1
