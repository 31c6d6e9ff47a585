"""Measure what a criterion reads on calibration data, then score every prunable group: one entry point
for `optimize` and `score`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import cast

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.scoring.registry import (
    ChannelScores,
    ScoringContext,
    measures_for,
    needs_activations,
    needs_grams,
    score_groups,
)


class ScoringRecord(dict):
    """What scoring measured, as plain data (the report's ``scoring`` section), and, not part of that data,
    the consumer statistics reconstruction may reuse (``statistics``: `ConsumerGrams` of the consumers
    whose inputs no plan changes, or None)."""

    statistics: object | None = None


def measure_and_score(
    model,
    analysis,
    data,
    criterion: str,
    *,
    batch_size: int = 64,
    provider: str = "auto",
    levels: int | None = None,
    seed: int = 0,
    samples_per_image: int = 16,
    ridge: float = 1e-3,
    progress: Callable[[str, int, int], None] | None = None,
    lap: Callable[[str], None] | None = None,
    references: Sequence = (),
) -> tuple[dict[str, ChannelScores], dict]:
    """Scores per group, and what was measured for them (``lap("capture")`` after the calibration pass;
    ``progress("capture" | "score", done, total)`` along both). ``references``: tensors (`SiteTensor`)
    the pass of a criterion that reads consumer statistics also keeps at the sampled sites."""
    stats = grams = None
    info = ScoringRecord(criterion=criterion)
    report = (lambda done, total: progress("capture", done, total)) if progress else None
    if needs_activations(criterion):
        from edgeprune.capture import capture_stats

        stats = capture_stats(
            model,
            analysis,
            data,
            batch_size=batch_size,
            levels=levels,
            provider=provider,
            progress=report,
            measures=measures_for(criterion),
        )
        info.update(
            images=stats.images,
            capture_points=len(stats.points),
            labels=stats.labels_source,
            seconds=dict(stats.seconds),
        )
    if needs_grams(criterion):
        from edgeprune.capture.grams import capture_grams

        grams = capture_grams(
            model,
            analysis,
            data,
            samples_per_image=samples_per_image,
            seed=seed,
            batch_size=batch_size,
            provider=provider,
            progress=report,
            references=references,
        )
        info.update(
            images=grams.images,
            consumers=len(grams.grams),
            samples_per_image=samples_per_image,
            seconds=dict(grams.seconds),
        )
    if lap and (stats is not None or grams is not None):
        lap("capture")
    context = ScoringContext(model, analysis, stats, seed, grams=grams, ridge=ridge)
    scores = _score(context, criterion, progress) if progress else score_groups(context, criterion)
    info["fallback_groups"] = sorted(gid for gid, s in scores.items() if s.fallback)
    if grams is not None:
        from edgeprune.capture.grams import fixed_inputs

        info.statistics = fixed_inputs(model, analysis, grams)
    return scores, info


def _score(context: ScoringContext, criterion: str, progress: Callable[[str, int, int], None]):
    """`score_groups`, one group at a time, saying how far it got (a large model's refit-error scoring takes
    minutes: a long run must not look hung)."""
    groups = context.analysis.prunable_groups
    scores: dict[str, ChannelScores] = {}
    progress("score", 0, len(groups))
    for done, group in enumerate(groups, 1):
        one = replace(context, analysis=cast(ChannelAnalysis, _Only(context.analysis, group)))
        scores.update(score_groups(one, criterion))
        progress("score", done, len(groups))
    return scores


class _Only:
    """The analysis as a criterion sees it, with one prunable group (the others' scores come one by one)."""

    def __init__(self, analysis, group) -> None:
        self._analysis, self.prunable_groups = analysis, (group,)

    def __getattr__(self, name: str):
        return getattr(self._analysis, name)
