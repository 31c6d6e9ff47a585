"""Measure what a criterion reads on calibration data, then score every prunable group: one entry point
for `optimize` and `score`."""

from __future__ import annotations

from collections.abc import Callable

from edgeprune.scoring.registry import (
    ChannelScores,
    ScoringContext,
    measures_for,
    needs_activations,
    needs_grams,
    score_groups,
)


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
) -> tuple[dict[str, ChannelScores], dict]:
    """Scores per group, and what was measured for them (``lap("capture")`` after the calibration pass)."""
    stats = grams = None
    info: dict = {"criterion": criterion}
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
        )
        info.update(
            images=grams.images,
            consumers=len(grams.grams),
            samples_per_image=samples_per_image,
            seconds=dict(grams.seconds),
        )
    if lap and (stats is not None or grams is not None):
        lap("capture")
    scores = score_groups(ScoringContext(model, analysis, stats, seed, grams=grams, ridge=ridge), criterion)
    info["fallback_groups"] = sorted(gid for gid, s in scores.items() if s.fallback)
    return scores, info
