"""The stages between calibration data and a pruned model, shared by `optimize`, its progressive schedule
and the benchmarks: score, select, cut, prove, reconstruct; and the clock that times them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from edgeprune.errors import VerificationError
from edgeprune.selection import SelectionContext, Selector, strategy
from edgeprune.selection.strategies import settings_for
from edgeprune.surgery import PruningPlan, apply_plan, verify

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class PruneOutcome:
    """The stages between calibration data and a pruned model, with their evidence."""

    plan: PruningPlan
    pruned: object  # ModelGraph straight from surgery
    final: object  # after reconstruction (the same as ``pruned`` without it)
    proof: object  # Verification
    scores: Mapping[str, object]
    scoring: Mapping[str, object]
    refit: object | None  # ReconstructionReport


def prune_to_budget(
    model,
    analysis,
    selector: Selector,
    fit,
    held_out,
    settings,
    progress: Progress | None = None,
    clock: StageClock | None = None,
) -> PruneOutcome:
    """Score, select, cut, prove, and (optionally) reconstruct: the part of `optimize` benchmarks reuse.
    ``settings``: the run's `OptimizeSettings`."""
    clock = clock or StageClock({})
    scores, scoring = score_channels(model, analysis, fit, settings, progress, clock)
    return cut(model, analysis, selector, scores, scoring, fit, held_out, settings, progress, clock)


def cut(
    model,
    analysis,
    selector: Selector,
    scores,
    scoring,
    fit,
    held_out,
    settings,
    progress: Progress | None = None,
    clock: StageClock | None = None,
) -> PruneOutcome:
    """Select to ``selector``'s budget from scores already measured, cut, prove, reconstruct. ``scoring``
    (`score_channels`' record) may carry the consumer statistics reconstruction reuses."""
    clock = clock or StageClock({})
    chosen = settings.selection.strategy
    context = SelectionContext(
        model,
        analysis,
        selector,
        {gid: s.scores for gid, s in scores.items()},
        fit=fit,
        settings=settings_for(chosen, settings.selection),
        seed=settings.seed,
        batch_size=settings.batch_size,
        provider=settings.provider,
        progress=progress,
        reconstruction=settings.reconstruction,
    )
    kept = _select(chosen, context, settings.selection)
    rebuild = settings.reconstruction
    plan = PruningPlan(
        model_sha256=analysis.model_sha256,
        kept=MappingProxyType(kept),
        strategy=chosen,
        criterion=settings.scoring.criterion,
        seed=settings.seed,
        settings=MappingProxyType({"budget": selector.budget.to_dict(), "reconstruct": rebuild.reconstruct}),
    )
    clock.lap("select")
    pruned = apply_plan(model, analysis, plan)
    proof = verify(
        model,
        analysis,
        plan,
        pruned,
        feeds=next(iter(held_out.batches(settings.batch_size))).inputs,
        tolerance=settings.checks.tolerance,
    )
    if not proof.passed:
        raise VerificationError(
            f"the pruned model differs from the masked original by {proof.max_rel:.2e}; nothing was written"
        )
    clock.lap("surgery")
    final, refit = pruned, None
    if rebuild.reconstruct:
        from edgeprune.reconstruct import reconstruct

        final, refit = reconstruct(
            model,
            pruned,
            analysis,
            plan,
            fit,
            samples_per_image=rebuild.samples_per_image,
            ridge=rebuild.ridge,
            batch_size=settings.batch_size,
            provider=settings.provider,
            seed=settings.seed,
            statistics=getattr(scoring, "statistics", None),  # scoring's Gram sums, where inputs did not change
            progress=progress,
        )
        clock.lap("reconstruct")
    return PruneOutcome(plan, pruned, final, proof, scores, scoring, refit)


def _select(chosen: str, context: SelectionContext, selection):
    """The strategy's plan; with depth on, residual blocks go first (by the semiotic rule: least
    superization first, each within the guard), then the strategy chooses channels on what is left. The
    semiotic strategy does both itself."""
    depth = selection.semiotic.depth
    if depth.mode == "off" or chosen == "semiotic":
        return strategy(chosen)(context)
    from edgeprune.semiotic.strategy import curve_batches, select_with_depth

    batches = curve_batches(context, selection.semiotic.images)
    return select_with_depth(context, depth, lambda ctx, _: strategy(chosen)(ctx), batches, selection.semiotic.levels)


def latency_model(device: str | None, model, analysis):
    """The target device's latency model (this machine's profile when no device is named: with this model's
    layer tables, measured here on first use and cached)."""
    from edgeprune.hardware import LatencyModel, resolve_device
    from edgeprune.hardware.host_cache import with_model_tables

    return LatencyModel(with_model_tables(resolve_device(device or "host"), model, analysis), model, analysis)


def score_channels(model, analysis, fit, settings, progress=None, clock: StageClock | None = None):
    """One score per channel of every prunable group, by ``settings.scoring.criterion``."""
    from edgeprune.scoring.measure import measure_and_score

    clock = clock or StageClock({})
    rebuild = settings.reconstruction
    references = []
    if rebuild.reconstruct:  # the tensors it fits to, kept by the capture pass where it makes one
        from edgeprune.reconstruct.targets import reference_tensors

        references = reference_tensors(model, analysis)
    scores, info = measure_and_score(
        model,
        analysis,
        fit,
        settings.scoring.criterion,
        batch_size=settings.batch_size,
        provider=settings.provider,
        levels=settings.scoring.levels,
        seed=settings.seed,
        samples_per_image=rebuild.samples_per_image,
        ridge=rebuild.ridge,
        progress=progress,
        lap=clock.lap,
        references=references,
    )
    clock.lap("score")
    return scores, info


class StageClock:
    """Seconds spent in each stage: ``lap(name)`` records the time since the previous lap under ``name``."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings, self.start = timings, time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self.start, 3)
        self.start = now


def training_progress(progress: Progress | None):
    if progress is None:
        return None
    return lambda step, total, loss, measure: progress("finetune", step, total or step)
