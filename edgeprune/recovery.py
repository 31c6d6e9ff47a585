"""Recovery inside `optimize`: distillation after reconstruction, and the progressive schedule that reaches a
large budget in K steps (AMC, NetAdapt) with reconstruction and distillation after each.

Only the settings type is imported at module level; torch is imported when training really starts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from edgeprune.errors import InputError
from edgeprune.settings_tree import setting
from edgeprune.train.settings import TRAIN_DEVICES, DistillSettings

_D = DistillSettings()  # the distillation defaults, which the recovery table's keys start from


@dataclass(frozen=True)
class RecoverySettings:
    """The ``[recovery]`` table of `optimize`. Training runs when ``finetune-epochs`` or ``finetune-time`` is
    given (or ``finetune-steps`` > 1: one epoch per cut by default). ``finetune-steps``: cuts toward the
    budget, geometric in the budget's measure (10x in 3 steps keeps 46%, 22%, then 10% of the MACs).
    ``train-data``: a dataset in the formats of --calib (default: the calibration data's fit split, never
    the held-out one). The other keys are `DistillSettings`' (set with ``--finetune-set KEY=VALUE``)."""

    SECTION: ClassVar[str] = "Reconstruction and recovery"

    finetune_epochs: float | None = setting(
        None,
        metavar="EPOCHS",
        help="Distil the pruned model from the "
        "original for this many epochs of --train-data after reconstruction "
        "(needs torch).",
    )
    finetune_time: float | None = setting(
        None, metavar="SECONDS", help="Distil for at most this many seconds (alone or with --finetune-epochs)."
    )
    finetune_steps: int = setting(
        1,
        help="Reach the budget in this many cuts, reconstructing and distilling after "
        "each (10x in 3 cuts keeps 46%, 22%, then 10% of the MACs).",
    )
    train_data: Path | None = setting(
        None,
        help="Data to distil on, in the formats of --calib and with its "
        "preprocessing [default: the calibration data's fit split].",
    )
    finetune_lr: float = setting(_D.lr, help="Peak learning rate of the distillation.")
    train_device: str = setting(_D.train_device, choices=TRAIN_DEVICES, help="Where distillation trains.")
    optimizer: str = setting(_D.optimizer, cli=False)
    momentum: float = setting(_D.momentum, cli=False)
    weight_decay: float = setting(_D.weight_decay, cli=False)
    schedule: str = setting(_D.schedule, cli=False)
    batch_size: int = setting(_D.batch_size, cli=False)
    optimizer_steps: int | None = setting(_D.steps, cli=False)
    clip_norm: float | None = setting(_D.clip_norm, cli=False)
    batchnorm: bool = setting(_D.batchnorm, cli=False)
    temperature: float = setting(_D.temperature, cli=False)
    label_weight: float = setting(_D.label_weight, cli=False)
    feature_weight: float = setting(_D.feature_weight, cli=False)
    augment: bool = setting(_D.augment, cli=False)
    shift: int = setting(_D.shift, cli=False)
    evals_per_epoch: int = setting(_D.evals_per_epoch, cli=False)

    def __post_init__(self) -> None:
        if isinstance(self.finetune_steps, bool) or not isinstance(self.finetune_steps, int) or self.finetune_steps < 1:
            raise InputError(f"finetune-steps must be a whole number of at least 1, got {self.finetune_steps!r}")
        if self.train_data is not None and not self.enabled:
            raise InputError("train-data needs training: add finetune-epochs or finetune-time")
        if self.enabled:
            self.distill(seed=0)  # DistillSettings checks every value once, here

    @property
    def enabled(self) -> bool:
        return self.finetune_epochs is not None or self.finetune_time is not None or self.finetune_steps > 1

    @property
    def steps(self) -> int:
        return self.finetune_steps

    def distill(self, seed: int) -> DistillSettings | None:
        """The training run after each cut (None: no training), seeded by the run."""
        if not self.enabled:
            return None
        epochs = self.finetune_epochs
        if epochs is None and self.finetune_time is None and self.optimizer_steps is None:
            epochs = 1.0
        return DistillSettings(
            epochs=epochs,
            steps=self.optimizer_steps,
            time_budget=self.finetune_time,
            lr=self.finetune_lr,
            optimizer=self.optimizer,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            schedule=self.schedule,
            batch_size=self.batch_size,
            clip_norm=self.clip_norm,
            batchnorm=self.batchnorm,
            temperature=self.temperature,
            label_weight=self.label_weight,
            feature_weight=self.feature_weight,
            augment=self.augment,
            shift=self.shift,
            evals_per_epoch=self.evals_per_epoch,
            seed=seed,
            train_device=self.train_device,
        )


def distill_outcome(model, analysis, plan, student, train, held_out, settings: DistillSettings, progress=None):
    """Distil ``student`` (the pruned, reconstructed model) from ``model``; feature terms from the plan."""
    from edgeprune.train import distill
    from edgeprune.train.correspond import feature_pairs

    features = feature_pairs(analysis, plan, student) if settings.feature_weight > 0 else ()
    return distill(student, model, train, held_out, settings, features=features, progress=progress)


def step_budget(budget, step: int, steps: int, original: Costs, current: Costs):
    """The budget of cut ``step`` of ``steps``, relative to the current model: a geometric point between
    the original and the final target, and a floor that compounds to the final floor."""
    share = step / steps
    macs = params = speedup = latency_ms = None
    if budget.macs is not None:
        macs = min(1.0, original.macs * budget.macs**share / current.macs)
    if budget.params is not None:
        params = min(1.0, original.params * budget.params**share / current.params)
    if budget.speedup is not None:
        target = original.latency_ms / budget.speedup**share
        speedup = max(1.0, current.latency_ms / target)
    if budget.latency_ms is not None:
        latency_ms = original.latency_ms * (budget.latency_ms / original.latency_ms) ** share
    return replace(
        budget, macs=macs, params=params, speedup=speedup, latency_ms=latency_ms, floor=budget.floor ** (1.0 / steps)
    )


@dataclass(frozen=True)
class Costs:
    macs: float
    params: float
    latency_ms: float | None


def compose(original_kept: dict, original_analysis, step_kept) -> dict:
    """The plan against the original model after a cut of an already pruned model (same group ids)."""
    composed = {}
    for group in original_analysis.prunable_groups:
        before = original_kept.get(group.id, tuple(range(group.channels)))
        chosen = step_kept.get(group.id)
        if chosen is None:
            composed[group.id] = tuple(before)
            continue
        if max(chosen, default=-1) >= len(before):
            raise RuntimeError(f"group {group.id}: the step plan indexes {max(chosen)} of {len(before)} channels")
        composed[group.id] = tuple(int(before[i]) for i in chosen)
    return composed
