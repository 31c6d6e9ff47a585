"""One candidate of a run: cut to a budget (scored, selected, proven, reconstructed, and distilled when
recovery is on) and judged on the held-out split. `optimize` makes one; the goal search makes several."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeprune.evaluate import compare_all
from edgeprune.job import Job
from edgeprune.stages import PruneOutcome, StageClock, cut, score_channels, training_progress


@dataclass(frozen=True)
class Pruned:
    """One candidate: the stages' outcome, the model to ship, and the recovery record (None: no training)."""

    outcome: PruneOutcome
    final: Any  # ModelGraph: the model to ship
    recovery: dict | None


def prune_and_recover(job: Job, budget, progress=None, clock: StageClock | None = None, scored=None) -> Pruned:
    """One candidate at ``budget``: score (unless ``scored`` gives the scores), select, cut, prove,
    reconstruct and, with recovery, distil (in one cut, or progressively)."""
    clock = clock or StageClock({})
    settings = job.settings
    selector = job.selector(budget)
    if settings.recovery.steps > 1:
        from edgeprune.progressive import prune_progressively

        outcome, recovery = prune_progressively(
            job.model, job.analysis, selector, job.fit, job.held_out, job.train, settings, progress, clock
        )
        return Pruned(outcome, outcome.final, recovery)
    scores, scoring = scored or score_channels(job.model, job.analysis, job.fit, settings, progress, clock)
    outcome = cut(job.model, job.analysis, selector, scores, scoring, job.fit, job.held_out, settings, progress, clock)
    if not settings.recovery.enabled:
        return Pruned(outcome, outcome.final, None)
    from edgeprune.recovery import distill_outcome

    distill = settings.recovery.distill(settings.seed)
    assert distill is not None  # recovery is enabled
    final, trained = distill_outcome(
        job.model,
        job.analysis,
        outcome.plan,
        outcome.final,
        job.train,
        job.held_out,
        distill,
        progress=training_progress(progress),
    )
    clock.lap("recover")
    return Pruned(outcome, final, {"steps": [], "final": trained.to_dict()})


def judge(job: Job, candidate):
    """``candidate`` against the original on the held-out split, by the task's measures."""
    return judge_all(job, [candidate])[0]


def judge_all(job: Job, candidates) -> list:
    """`judge` of each of ``candidates``, the original run once over the held-out split for all of them."""
    settings = job.settings
    task = None if settings.checks.task == "auto" else settings.checks.task
    return compare_all(
        job.model, candidates, job.held_out, batch_size=settings.batch_size, provider=settings.provider, task=task
    )
