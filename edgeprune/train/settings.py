"""`DistillSettings`: how recovery trains the pruned model against the original (validated in one place)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from edgeprune.errors import InputError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")
TRAIN_DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class DistillSettings:
    """Label-free knowledge distillation on the ONNX graph, with labels used when they exist.

    The length is ``epochs`` passes over the training data, or ``steps`` optimiser steps, whichever is
    given (both: the first reached); ``time_budget`` seconds stops it earlier and, alone, sets the length
    (the schedule then anneals over the time). With none of the three, one epoch.
    The defaults: SGD with Nesterov momentum 0.9, learning rate 0.01 annealed to 0 by a cosine, batches
    of 128, flips and shifts of 2 px, no weight decay, and the gradient's global norm clipped to 5:
    exported CNNs have BatchNorm folded into their convs, and on such networks unclipped SGD diverges
    within a few steps even at a learning rate of 0.001. Clipping at 5 without weight decay was chosen on
    a validation split of train images over clipping at 1 with decay 5e-4 (the benchmarks' peer recipe)
    and AdamW (docs/results-recovery.md).
    """

    epochs: float | None = None
    steps: int | None = None
    time_budget: float | None = None
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    batch_size: int = 128
    clip_norm: float | None = 5.0  # global gradient-norm clipping before each step (None: off)
    batchnorm: bool = False  # train with a BatchNorm after each conv, folded back at the end (train/batchnorm.py)
    temperature: float = 4.0  # softens classifier outputs in the KL term (Hinton et al.), scaled by T^2
    label_weight: float = 1.0  # weight of the cross-entropy term when labels exist (0: ignore labels)
    feature_weight: float = 0.0  # weight of the kept-channel feature terms at the pruned groups
    augment: bool = True  # seeded horizontal flips and shifts of up to ``shift`` pixels on image inputs
    shift: int = 2
    evals_per_epoch: int = 1  # held-out judgements per epoch (and one before training, one at the end)
    seed: int = 0
    train_device: str = "auto"

    def __post_init__(self) -> None:
        if self.epochs is not None and not (_number(self.epochs) and self.epochs > 0):
            raise InputError(f"--epochs must be positive, got {self.epochs!r}")
        if self.steps is not None and not (_whole(self.steps) and self.steps > 0):
            raise InputError(f"--steps must be a whole number of at least 1, got {self.steps!r}")
        if self.time_budget is not None and not (_number(self.time_budget) and self.time_budget > 0):
            raise InputError(f"--time-budget must be a positive number of seconds, got {self.time_budget!r}")
        if not (_number(self.lr) and self.lr > 0):
            raise InputError(f"--lr must be positive, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"unknown optimizer '{self.optimizer}'; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"unknown schedule '{self.schedule}'; choose one of {', '.join(SCHEDULES)}")
        if not (_whole(self.batch_size) and self.batch_size >= 1):
            raise InputError(f"--batch-size must be a whole number of at least 1, got {self.batch_size!r}")
        if not (_number(self.temperature) and self.temperature > 0):
            raise InputError(f"--temperature must be positive, got {self.temperature!r}")
        if self.clip_norm is not None and not (_number(self.clip_norm) and self.clip_norm > 0):
            raise InputError(f"clip_norm must be positive (or None for no clipping), got {self.clip_norm!r}")
        for key in ("label_weight", "feature_weight", "weight_decay", "momentum"):
            value = getattr(self, key)
            if not (_number(value) and value >= 0):
                raise InputError(f"--{key.replace('_', '-')} must be zero or positive, got {value!r}")
        if not (_whole(self.shift) and self.shift >= 0) or not (
            _whole(self.evals_per_epoch) and self.evals_per_epoch >= 1
        ):
            raise InputError("shift must be zero or positive and evals_per_epoch at least 1")
        if self.train_device not in TRAIN_DEVICES:
            raise InputError(f"unknown --train-device '{self.train_device}'; choose one of {', '.join(TRAIN_DEVICES)}")

    @property
    def length_given(self) -> bool:
        return self.epochs is not None or self.steps is not None or self.time_budget is not None

    def to_dict(self) -> dict:
        return asdict(self)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
