"""The goal mode: with no budget, the fastest plan on the target device whose held-out measure (accuracy
with labels, top-1 agreement with the original without; the task's measure for other outputs) drops by
at most ``max-acc-drop`` points.

A bisection over the predicted speed-up, between none and the most the floors and alignment allow, in
log space (speed-ups compose by multiplication): every candidate is cut, proven, reconstructed (and
distilled, with recovery) and judged; the channels are scored once for all of them. The drop is close to
monotone in the speed-up, which is all bisection needs; the best candidate that met the goal is kept,
whichever step found it.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from edgeprune.candidate import judge, prune_and_recover
from edgeprune.errors import BudgetError, InputError
from edgeprune.job import Job
from edgeprune.selection import Budget
from edgeprune.stages import StageClock, score_channels

logger = logging.getLogger(__name__)

BISECTION_STEPS = 6  # after the fastest plan: the range is cut to 1/64 of its log-width
SPEEDUP_RESOLUTION = 1.005  # stop when the bracket is narrower than this ratio


def speedup_range(job: Job, scores) -> tuple[float, float]:
    """The predicted latency of the unpruned model and the most the floors and alignment allow, on the device."""
    from edgeprune.semiotic.depth_selector import widest

    base = job.selector(Budget(macs=1.0, floor=job.settings.budget.floor, alignment=job.alignment))
    selector = widest(base, job.model, job.analysis, job.settings.selection.semiotic.depth)  # blocks count too
    fastest = selector.latency_ms(selector.floor_plan(scores))
    full = selector.full_latency_ms
    if not full or not fastest or fastest <= 0:
        raise InputError(
            "the goal mode needs a latency to search on, and this model has no layer the latency "
            "model can price; give a budget (--target-flops)"
        )
    return full, full / fastest


def search_goal(job: Job, progress=None, clock: StageClock | None = None):
    """The chosen candidate (`candidate.Pruned`) and the report's ``goal`` section."""
    clock = clock or StageClock({})
    settings = job.settings
    limit = settings.budget.goal_drop
    scored = score_channels(job.model, job.analysis, job.fit, settings, progress, clock)
    flat = {gid: np.ones(s.scores.shape) for gid, s in scored[0].items()}
    _, most = speedup_range(job, flat)
    if most < SPEEDUP_RESOLUTION:
        raise BudgetError(
            f"no plan is predicted faster on {settings.latency.device or 'host'}: at the floors "
            f"({settings.budget.floor:.0%} per group) the speed-up is {most:.3f}x; lower --floor or "
            "choose another --device"
        )
    candidates: list[dict] = []
    best = None

    def attempt(speedup: float):
        nonlocal best
        budget = Budget(speedup=speedup, floor=settings.budget.floor, alignment=job.alignment)
        try:
            candidate = prune_and_recover(job, budget, progress, clock, scored=scored)
        except BudgetError as exc:  # beyond what the guarded depth search reaches: as good as not met
            logger.info("goal: %.3fx asked is out of reach (%s)", speedup, exc)
            return False
        comparison = judge(job, candidate.final)
        if comparison.drop_points is None:
            raise InputError(
                "the goal mode needs a held-out measure: these outputs have none (only an output "
                "error); give --task, or a budget (--target-flops)"
            )
        ok = comparison.drop_points <= limit + 1e-9
        selector = job.selector(budget)
        macs, params = selector.fractions(candidate.outcome.plan.kept)
        predicted = selector.full_latency_ms / selector.latency_ms(candidate.outcome.plan.kept)
        candidates.append(
            {
                "target_speedup": round(speedup, 4),
                "predicted_speedup": round(predicted, 4),
                "macs_fraction": round(macs, 4),
                "params_fraction": round(params, 4),
                "measure": comparison.measure,
                "drop_points": round(comparison.drop_points, 3),
                "met": ok,
            }
        )
        logger.info(
            "goal: %.3fx asked, %.3fx predicted, %s drop %.2f points: %s",
            speedup,
            predicted,
            comparison.measure,
            comparison.drop_points,
            "met" if ok else "not met",
        )
        if ok and (best is None or predicted > best[1]):
            best = (candidate, predicted, len(candidates) - 1)
        return ok

    low, high = 0.0, math.log(most)  # log speed-ups: 0 (nothing cut) always meets the goal
    if not attempt(most):
        for _ in range(BISECTION_STEPS):
            if high - low < math.log(SPEEDUP_RESOLUTION):
                break
            middle = (low + high) / 2
            if attempt(math.exp(middle)):
                low = middle
            else:
                high = middle
    clock.lap("goal")
    if best is None:
        if not candidates:
            raise BudgetError("no candidate of the goal search was reachable; give a budget (--target-flops)")
        smallest = min(candidates, key=lambda c: c["target_speedup"])
        raise BudgetError(
            f"no plan met the goal of at most {limit:g} points of held-out {smallest['measure']} lost: the smallest "
            f"cut tried ({smallest['predicted_speedup']:.3f}x predicted on {settings.latency.device or 'host'}) lost "
            f"{smallest['drop_points']:.2f}; nothing was written (allow more: --max-acc-drop, or recover with "
            "--finetune-epochs)"
        )
    section = {
        "max_drop_points": limit,
        "measure": candidates[best[2]]["measure"],
        "judged_on": "held-out",
        "speedup_range": [1.0, round(most, 4)],
        "candidates": candidates,
        "chosen": best[2],
    }
    return best[0], section
