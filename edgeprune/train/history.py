"""`RecoveryReport`: what a distillation run did and what it bought, for the report and the terminal."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Judgement:
    """The held-out measure after ``step`` optimiser steps (``epoch`` passes of the training data)."""

    step: int
    epoch: float
    measure: float  # higher is better: accuracy, top-1 agreement, or minus the relative output error
    train_loss: float | None


@dataclass(frozen=True)
class RecoveryReport:
    measure: str  # "accuracy", "agreement" or "neg_rel_error"
    before: float  # the held-out measure of the model given (after reconstruction)
    best: float
    best_step: int
    steps: int
    epochs: float
    images_seen: int
    train_images: int
    train_data: str  # where the training samples came from
    held_out_images: int
    seconds: float
    stopped: str  # "length", "time budget" or "interrupted"
    labels_used: bool
    device: str
    settings: dict
    loss_curve: tuple[tuple[int, float], ...] = field(default=())  # (step, mean loss since the last point)
    judgements: tuple[Judgement, ...] = field(default=())
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        data = asdict(self)
        data["loss_curve"] = [list(point) for point in self.loss_curve]
        data["judgements"] = [asdict(j) for j in self.judgements]
        data["warnings"] = list(self.warnings)
        return data
