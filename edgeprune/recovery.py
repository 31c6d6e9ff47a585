"""Recovery inside `optimize`: distillation after reconstruction, and the progressive schedule that reaches a
large budget in K steps (AMC, NetAdapt) with reconstruction and distillation after each.

Only the settings type is imported at module level; torch is imported when training really starts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from edgeprune.errors import InputError
from edgeprune.train.settings import DistillSettings


@dataclass(frozen=True)
class RecoverySettings:
    """``distill``: the training run after each cut (None: no training). ``steps``: cuts toward the budget,
    geometric in the budget's measure (10x in 3 steps keeps 46%, 22%, then 10% of the MACs). ``train_data``:
    a dataset in the formats of --calib (default: the calibration data's fit split, never the held-out one)."""

    distill: DistillSettings | None = None
    steps: int = 1
    train_data: Path | None = None

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise InputError(f"--finetune-steps must be a whole number of at least 1, got {self.steps!r}")
        if self.steps > 1 and self.distill is None:
            raise InputError("--finetune-steps needs training between the steps: add --finetune-epochs or --finetune-time")

    @property
    def enabled(self) -> bool:
        return self.distill is not None

    def to_dict(self) -> dict:
        return {"distill": None if self.distill is None else self.distill.to_dict(), "steps": self.steps,
                "train_data": None if self.train_data is None else str(self.train_data)}


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
    return replace(budget, macs=macs, params=params, speedup=speedup, latency_ms=latency_ms,
                   floor=budget.floor ** (1.0 / steps))


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
