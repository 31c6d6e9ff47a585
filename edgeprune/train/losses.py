"""Distillation losses: KL on softened classifier outputs, scaled MSE on the others, kept-channel features."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class OutputKind:
    """How one graph output is compared: as class scores (``classifier``) or as values."""

    name: str
    classifier: bool
    probabilities: bool  # the graph ends in a Softmax: its outputs are probabilities, not logits


def output_kinds(model) -> tuple[OutputKind, ...]:
    """Classifier-like outputs are N x C float scores (C >= 2); everything else (maps, boxes, sequences) is MSE."""
    producers = {out: node.op_type for node in model.proto.graph.node for out in node.output}
    kinds = []
    for name in model.output_names:
        shape = model.shapes.get(name, ())
        classes = shape[1] if len(shape) == 2 else None
        classifier = isinstance(classes, int) and classes >= 2
        kinds.append(OutputKind(name, classifier, producers.get(name) == "Softmax"))
    return tuple(kinds)


def logits_of(kind: OutputKind, output: torch.Tensor) -> torch.Tensor:
    return torch.log(output.clamp_min(1e-12)) if kind.probabilities else output


def distillation_loss(kinds, student, teacher, temperature: float) -> torch.Tensor:
    """Sum over outputs: T^2 KL(teacher || student) on logits / T, or MSE relative to the teacher's variance."""
    total = student[0].new_zeros(())
    for kind, s, t in zip(kinds, student, teacher):
        if kind.classifier:
            soft_teacher = F.log_softmax(logits_of(kind, t) / temperature, dim=1)
            soft_student = F.log_softmax(logits_of(kind, s) / temperature, dim=1)
            total = (
                total + F.kl_div(soft_student, soft_teacher, log_target=True, reduction="batchmean") * temperature**2
            )
        else:
            total = total + F.mse_loss(s, t) / t.var().clamp_min(1e-8)
    return total


def label_loss(kinds, student, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the labels on the first classifier output."""
    for kind, s in zip(kinds, student):
        if kind.classifier:
            return F.cross_entropy(logits_of(kind, s), labels)
    raise ValueError("labels need a classifier output")


def feature_loss(pairs, student_maps, teacher_maps) -> torch.Tensor:
    """Mean over the pruned groups of the MSE between the student's maps and the teacher's kept channels."""
    losses = []
    for pair in pairs:
        t = teacher_maps[pair.teacher].index_select(1, pair.positions.to(teacher_maps[pair.teacher].device))
        losses.append(F.mse_loss(student_maps[pair.student], t) / t.var().clamp_min(1e-8))
    return torch.stack(losses).mean()
