"""`distill`: train a pruned model against its original on the ONNX graph itself, keep the best weights by a
held-out judgement, and write them back into the same initializers."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from edgeprune.errors import InputError
from edgeprune.train.batchnorm import calibrate
from edgeprune.train.correspond import FeaturePair, check_correspondence
from edgeprune.train.data import augment, epoch_batches, to_tensors
from edgeprune.train.executor import GraphModule
from edgeprune.train.history import Judgement, RecoveryReport
from edgeprune.train.judge import Judge, Teacher
from edgeprune.train.losses import distillation_loss, feature_loss, label_loss, output_kinds
from edgeprune.train.settings import DistillSettings
from edgeprune.train.writeback import write_back

logger = logging.getLogger(__name__)

#: Called after each step with (step, total steps or None, running loss, last held-out measure or None).
StepProgress = Callable[[int, int | None, float, float | None], None]
SMALL_TRAINING_SET = 1000  # below this, distillation mostly memorises (see the held-out judgement)


def distill(
    student,
    teacher,
    train,
    held_out,
    settings: DistillSettings,
    *,
    features: Sequence[FeaturePair] = (),
    progress: StepProgress | None = None,
):
    """Return ``(trained ModelGraph, RecoveryReport)``; ``student`` and ``teacher`` are left untouched.

    The loss is KL(teacher || student) at ``settings.temperature`` on classifier outputs (MSE relative to
    the teacher's variance on the others), plus cross-entropy when ``train`` has labels, plus the feature
    terms of ``features``. The weights kept are the best by the held-out measure (the student as given
    counts too, so recovery never returns something worse on the held-out split than what it got).
    Ctrl-C stops training early and still returns the best weights so far.
    """
    check_correspondence(teacher, student)
    _check_data(train, held_out, student)
    device = resolve_train_device(settings.train_device)
    student_module = GraphModule(student, conv_batchnorm=settings.batchnorm).to(device)
    if settings.batchnorm:
        _calibrate_norms(student_module, train, settings, device)
    kinds = output_kinds(teacher)
    if features and settings.feature_weight <= 0:
        features = ()
    teacher_module = Teacher(teacher, device, with_features=bool(features))
    judge = Judge(teacher_module, held_out, kinds, device, settings.batch_size)
    run = _Run(student_module, teacher_module, kinds, settings, features, device, train)
    start = time.perf_counter()
    before = judge(student_module)
    run.remember(0, before, None)
    stopped = run.train(judge, progress, start)
    trained = write_back(student, run.best_state)
    warnings = []
    if train.count < SMALL_TRAINING_SET:
        warnings.append(
            f"trained on {train.count} {train.noun}: small training sets overfit; the weights kept are the "
            "best on the held-out split, and more data helps more than more epochs"
        )
    report = RecoveryReport(
        measure=judge.measure,
        before=before,
        best=run.best,
        best_step=run.best_step,
        steps=run.step,
        epochs=round(run.step / run.steps_per_epoch, 3),
        images_seen=run.images_seen,
        train_images=train.count,
        train_data=train.source,
        held_out_images=held_out.count,
        seconds=round(time.perf_counter() - start, 2),
        stopped=stopped,
        labels_used=run.labels_used,
        device=str(device),
        settings=settings.to_dict(),
        loss_curve=tuple(run.loss_curve),
        judgements=tuple(run.judgements),
        warnings=tuple(warnings),
    )
    return trained, report


CALIBRATION_BATCHES = 16  # training batches whose statistics start the training BatchNorms


def _calibrate_norms(module, train, settings: DistillSettings, device) -> None:
    """Start each training BatchNorm at the statistics of its conv's output (so it begins as the identity)."""
    rng = np.random.default_rng(settings.seed + 1)
    order = rng.permutation(train.count)[: CALIBRATION_BATCHES * settings.batch_size].tolist()

    def run_batches() -> None:
        for batch in train.batches(settings.batch_size, indices=order):
            module(to_tensors(batch.inputs, device))

    calibrate(module.norms.values(), run_batches)


def resolve_train_device(name: str):
    """``auto``: CUDA when torch sees a usable GPU, else the CPU; ``cuda`` without one is an error."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError("--train-device cuda, but torch sees no CUDA device here; use --train-device cpu or auto")
    return torch.device("cuda")


def _check_data(train, held_out, model) -> None:
    if train.input_names != model.input_names:
        raise InputError(
            f"the training data gives inputs {list(train.input_names)}, the model takes "
            f"{list(model.input_names)}; give arrays named as the model's inputs"
        )
    if train.count < 1 or held_out.count < 1:
        raise InputError("distillation needs at least one training and one held-out sample")


class _Run:
    """The optimiser loop and its bookkeeping (best state, curves, counts)."""

    def __init__(self, student, teacher, kinds, settings: DistillSettings, features, device, train) -> None:
        self.student, self.teacher, self.kinds, self.settings = student, teacher, kinds, settings
        self.features, self.device, self.train_data = tuple(features), device, train
        self.steps_per_epoch = max(1, math.ceil(train.count / settings.batch_size))
        lengths = []
        if settings.epochs is not None:
            lengths.append(math.ceil(settings.epochs * self.steps_per_epoch))
        if settings.steps is not None:
            lengths.append(settings.steps)
        if not settings.length_given:
            lengths.append(self.steps_per_epoch)
        self.total_steps = min(lengths) if lengths else None
        self.labels_used = train.labels is not None and settings.label_weight > 0 and any(k.classifier for k in kinds)
        parameters = list(student.parameters())
        self.optimizer: torch.optim.Optimizer
        if settings.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(
                parameters,
                lr=settings.lr,
                momentum=settings.momentum,
                nesterov=settings.momentum > 0,
                weight_decay=settings.weight_decay,
            )
        else:
            self.optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.rng = np.random.default_rng(settings.seed)
        self.step, self.images_seen = 0, 0
        self.best, self.best_step = -math.inf, 0
        self.best_state: dict[str, torch.Tensor] = {}
        self.loss_curve: list[tuple[int, float]] = []
        self.judgements: list[Judgement] = []
        self._window: list[float] = []

    def remember(self, step: int, measure: float, loss: float | None) -> None:
        self.judgements.append(Judgement(step, round(step / self.steps_per_epoch, 3), measure, loss))
        if measure > self.best:
            self.best, self.best_step = measure, step
            self.best_state = {name: p.detach().cpu().clone() for name, p in self.student.onnx_parameters().items()}

    def fraction(self, elapsed: float) -> float:
        """How far through the schedule: by steps, by time, or the further of the two."""
        parts = []
        if self.total_steps:
            parts.append(self.step / self.total_steps)
        if self.settings.time_budget:
            parts.append(elapsed / self.settings.time_budget)
        return min(1.0, max(parts)) if parts else 0.0

    def train(self, judge: Judge, progress: StepProgress | None, start: float) -> str:
        settings = self.settings
        interval = max(1, self.steps_per_epoch // settings.evals_per_epoch)
        self.student.train()
        stopped = "length"
        try:
            while True:
                for batch in epoch_batches(self.train_data, settings.batch_size, self.rng):
                    elapsed = time.perf_counter() - start
                    if settings.time_budget is not None and elapsed >= settings.time_budget:
                        stopped = "time budget"
                        raise _Stop
                    self._set_lr(self.fraction(elapsed))
                    loss = self._step(batch)
                    self._window.append(loss)
                    if self.step % interval == 0 or self.step == self.total_steps:
                        self._judge(judge)
                    if progress is not None:
                        progress(self.step, self.total_steps, loss, self.judgements[-1].measure)
                    if self.total_steps is not None and self.step >= self.total_steps:
                        raise _Stop
        except _Stop:
            pass
        except KeyboardInterrupt:
            stopped = "interrupted"
            logger.warning("interrupted: keeping the best weights so far (step %d)", self.best_step)
        if self._window:
            self._judge(judge)
        return stopped

    def _judge(self, judge: Judge) -> None:
        mean_loss = float(np.mean(self._window)) if self._window else None
        if mean_loss is not None:
            self.loss_curve.append((self.step, round(mean_loss, 6)))
        self._window = []
        measure = judge(self.student)
        logger.info(
            "step %d (epoch %.2f): held-out %s %.4f, loss %s",
            self.step,
            self.step / self.steps_per_epoch,
            judge.measure,
            measure,
            "-" if mean_loss is None else f"{mean_loss:.4f}",
        )
        self.remember(self.step, measure, mean_loss)

    def _set_lr(self, fraction: float) -> None:
        lr = self.settings.lr
        if self.settings.schedule == "cosine":
            lr = 0.5 * lr * (1.0 + math.cos(math.pi * fraction))
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _step(self, batch) -> float:
        inputs = to_tensors(batch.inputs, self.device)
        if self.settings.augment:
            inputs = augment(inputs, self.settings.shift, self.generator)
        names = [p.teacher for p in self.features]
        teacher_out = self.teacher(inputs, extra_outputs=names) if names else (self.teacher(inputs), {})
        student_out = (
            self.student(inputs, extra_outputs=[p.student for p in self.features])
            if names
            else (self.student(inputs), {})
        )
        loss = distillation_loss(self.kinds, student_out[0], teacher_out[0], self.settings.temperature)
        if self.labels_used:
            labels = torch.from_numpy(batch.labels).to(self.device)
            loss = loss + self.settings.label_weight * label_loss(self.kinds, student_out[0], labels)
        if names:
            loss = loss + self.settings.feature_weight * feature_loss(self.features, student_out[1], teacher_out[1])
        if not torch.isfinite(loss):
            raise InputError(
                f"training diverged at step {self.step + 1} (the loss is not finite); lower --lr "
                "and run again (nothing was written)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.settings.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.student.parameters(), self.settings.clip_norm)
        self.optimizer.step()
        self.step += 1
        self.images_seen += len(batch)
        return float(loss.detach())


class _Stop(Exception):
    pass
