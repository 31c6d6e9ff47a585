"""`optimize --dry-run`: what can be pruned and how far, on the target device, before any data is read."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgeprune.errors import BudgetError, InputError
from edgeprune.job import load_job
from edgeprune.selection import Budget
from edgeprune.semiotic.depth_selector import widest as reach
from edgeprune.settings import OptimizeSettings


@dataclass(frozen=True)
class SearchProfile:
    """The reachable range under the floors and the alignment: from the unpruned model (fractions 1) to every
    prunable group at its floor. ``reachable``: whether the budget can be met (for a goal: whether any plan
    is predicted faster; whether it keeps the accuracy is only known from data)."""

    model: str
    device: str
    groups_prunable: int
    groups_frozen: int
    alignment: int
    floor: float
    macs: int
    params: int
    min_macs_fraction: float
    min_params_fraction: float
    latency_ms: float
    min_latency_ms: float
    budget: str
    reachable: bool
    reason: str

    @property
    def max_speedup(self) -> float:
        return self.latency_ms / self.min_latency_ms if self.min_latency_ms > 0 else 1.0

    def to_dict(self) -> dict:
        return {**asdict(self), "max_speedup": self.max_speedup}


def dry_run(settings: OptimizeSettings) -> SearchProfile:
    if settings.model is None:
        raise InputError("give the ONNX model to optimize (the MODEL argument, or 'model' in the --config file)")
    job = load_job(settings, data=False)
    flat = {g.id: np.ones(g.channels) for g in job.analysis.prunable_groups}
    depth = settings.selection.semiotic.depth  # blocks that may go widen the reach
    widest = reach(
        job.selector(Budget(macs=1.0, floor=settings.budget.floor, alignment=job.alignment)),
        job.model,
        job.analysis,
        depth,
    )
    floor = widest.floor_plan(flat)
    macs, params = widest.fractions(floor)
    full_ms, least_ms = widest.full_latency_ms or 0.0, widest.latency_ms(floor) or 0.0
    if settings.budget.explicit:
        budget = job.budget
        wanted, reachable, reason = budget.describe(), True, "the budget is within the reachable range"
        try:
            reach(job.selector(budget), job.model, job.analysis, depth).check_reachable(flat)
        except (BudgetError, InputError) as exc:
            reachable, reason = False, str(exc)
    else:
        wanted = f"goal: fastest within {settings.budget.goal_drop:g} points of held-out accuracy"
        reachable = full_ms > least_ms * 1.005
        reason = (
            "plans down to the floors are predicted faster; which of them keeps the accuracy is judged on data"
            if reachable
            else "no plan is predicted faster on this device at these floors"
        )
    groups = [g for g in job.analysis.groups if g.producers]
    return SearchProfile(
        model=str(settings.model),
        device=job.latency.profile.name,
        groups_prunable=len(job.analysis.prunable_groups),
        groups_frozen=sum(not g.prunable for g in groups),
        alignment=job.alignment,
        floor=settings.budget.floor,
        macs=int(widest.full.macs),
        params=int(widest.full.params),
        min_macs_fraction=macs,
        min_params_fraction=params,
        latency_ms=full_ms,
        min_latency_ms=least_ms,
        budget=wanted,
        reachable=reachable,
        reason=reason,
    )
