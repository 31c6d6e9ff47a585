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


def prune_to_budget(model, analysis, selector: Selector, fit, held_out, config,
                    progress: Progress | None = None, clock: StageClock | None = None) -> PruneOutcome:
    """Score, select, cut, prove, and (optionally) reconstruct: the part of `optimize` benchmarks reuse."""
    clock = clock or StageClock({})
    scores, scoring = _score(config, model, analysis, fit, progress, clock)
    context = SelectionContext(model, analysis, selector, {gid: s.scores for gid, s in scores.items()}, fit=fit,
                               config=config, progress=progress)
    kept = strategy(config.strategy)(context)
    plan = PruningPlan(
        model_sha256=analysis.model_sha256, kept=MappingProxyType(kept), strategy=config.strategy,
        criterion=config.criterion, seed=config.seed,
        settings=MappingProxyType({"budget": config.budget.to_dict(), "reconstruct": config.reconstruct}),
    )
    clock.lap("select")
    pruned = apply_plan(model, analysis, plan)
    proof = verify(model, analysis, plan, pruned, feeds=next(iter(held_out.batches(config.batch_size))).inputs,
                   tolerance=config.tolerance)
    if not proof.passed:
        raise VerificationError(f"the pruned model differs from the masked original by {proof.max_rel:.2e}; nothing was written")
    clock.lap("surgery")
    final, refit = pruned, None
    if config.reconstruct:
        from edgeprune.reconstruct import reconstruct

        final, refit = reconstruct(model, pruned, analysis, plan, fit, samples_per_image=config.samples_per_image,
                                   ridge=config.ridge, batch_size=config.batch_size, provider=config.provider,
                                   seed=config.seed)
        clock.lap("reconstruct")
    return PruneOutcome(plan, pruned, final, proof, scores, scoring, refit)


def latency_model(config, model, analysis):
    """The target device's latency model (this machine's profile when no device is named)."""
    from edgeprune.hardware import LatencyModel, resolve_device

    return LatencyModel(resolve_device(config.device or "host"), model, analysis)


def batch_size_for(model, requested: int) -> int:
    """A model exported with a fixed batch dimension can only take batches of exactly that size."""
    fixed = {model.shapes[name][0] for name in model.input_names if model.shapes.get(name)}
    fixed = {d for d in fixed if isinstance(d, int) and d > 0}
    if len(fixed) == 1:
        size = fixed.pop()
        if size != requested:
            logger.info("the model's batch dimension is fixed at %d: using batches of %d", size, size)
        return size
    return requested


def _flat(channels: int):
    import numpy as np

    return np.ones(channels)


def _score(config, model, analysis, fit, progress, clock):
    from edgeprune.scoring.measure import measure_and_score

    scores, info = measure_and_score(model, analysis, fit, config.criterion, batch_size=config.batch_size,
                                     provider=config.provider, levels=config.levels, seed=config.seed,
                                     samples_per_image=config.samples_per_image, ridge=config.ridge,
                                     progress=progress, lap=clock.lap)
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
