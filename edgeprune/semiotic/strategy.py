"""`--strategy semiotic` (docs/methods.md#semiotic-strategy): prune where the superization curve changes least.

Greedy: from the full model, every step tries removing one chunk from each prunable group in turn (the
group's lowest-scored kept channels, by the run's criterion), re-measures the superization curve of each
candidate on a fixed calibration subset, and keeps the candidate whose curve is closest to the original
model's (`curve_distance`: the mean absolute change of H_0 and of every Delta H_l); it stops as soon as
the selector says the plan meets the budget. With ``SemioticSettings.lazy`` the steps are lazy: a step
re-measures the candidates in the order of their last measured change and takes the first whose fresh
change is still the smallest; by default every candidate is measured at every step. Plans are never
measured by rebuilding the model: with ``judge = masked`` (the default) through one mask-input ONNX Runtime
session of the original model before any reconstruction (`MaskedEvaluator`); with ``judge = reconstructed``
as the network reconstruction would produce from it (`SequentialEvaluator`: the original graph with the
plan's channels masked, each layer reconstruction would refit refitted from other calibration images),
which on the reference models was no more accurate and 6 to 14 times slower. A layer's saliency map is the
mean of the channels its pruned version still has. Ties go to the earlier group, so runs repeat.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np

from edgeprune.selection.counts import step, top_channels, valid_count
from edgeprune.selection.selector import Kept
from edgeprune.semiotic.curve import CurveAccumulator, SuperizationCurve, curve_distance
from edgeprune.semiotic.layers import saliency_layers
from edgeprune.semiotic.settings import SemioticSettings

logger = logging.getLogger(__name__)


class CurveMeter:
    """The superization curve of any plan, measured on fixed batches: through the mask-input session (the
    masked network), or, given ``rows``, as reconstruction would leave the plan (`reconstructing_evaluator`:
    refitted from the batches ``rows`` with the run's ``reconstruction`` settings, measured on ``batches``)."""

    def __init__(
        self,
        model,
        analysis,
        batches,
        levels: int | None = None,
        provider: str = "auto",
        *,
        rows=None,
        reconstruction=None,
        seed: int = 0,
    ) -> None:
        from edgeprune.search.evaluator import MaskedEvaluator
        from edgeprune.search.sequential import reconstructing_evaluator

        self.analysis, self.levels = analysis, levels
        self.layers = saliency_layers(model, analysis)
        names = [layer.tensor for layer in self.layers]
        if rows is None:
            self.evaluator = MaskedEvaluator(model, analysis, batches, names, provider)
        else:
            self.evaluator = reconstructing_evaluator(
                model, analysis, rows, batches, names, reconstruction=reconstruction, seed=seed
            )
        self.evaluations = 0

    def curve(self, kept: Mapping[str, tuple[int, ...]]) -> SuperizationCurve:
        keep = self.analysis.keep_mask(kept)
        positions = {layer.tensor: self.analysis.kept_positions(layer.tensor, keep) for layer in self.layers}
        accumulator = CurveAccumulator(self.layers, self.levels)
        for values in self.evaluator.evaluate(kept):
            accumulator.update(values, positions)
        self.evaluations += 1
        return accumulator.curve("mean")


def semiotic_strategy(context) -> Kept:
    """The registered strategy: ``context.settings`` is its `SemioticSettings` (defaults without one). With
    depth on, residual blocks go first by the same rule (`semiotic.depth`), then channels if the budget
    still needs them, their curves measured on the model without the blocks."""
    settings = context.settings or SemioticSettings()
    images = meter_images(context, settings)
    if settings.depth.mode == "off":
        meter = _meter(context, context.model, context.analysis, images, settings)
        return select_semiotic(context.selector, context.scores, meter, settings, context.progress)

    def channels(depth_context, result) -> Kept:
        meter = _depth_meter(context, result, images, settings)
        return select_semiotic(depth_context.selector, context.scores, meter, settings, context.progress)

    batches = curve_batches(context, settings.images)  # the blocks' own curves, as the depth stage has them
    return select_with_depth(context, settings.depth, channels, batches, settings.levels)


def select_with_depth(context, depth, channels, batches, levels: int | None = None) -> Kept:
    """Blocks first (`remove_blocks`), then ``channels(context, result)`` on a selector that sees them gone,
    unless the blocks met the budget or ``depth.mode`` is ``only``. Any strategy that searches through its
    selector can be ``channels``: ``lambda ctx, _: ranked_strategy(ctx)`` gives the mi ranking after depth."""
    from dataclasses import replace

    from edgeprune.semiotic.depth import remove_blocks
    from edgeprune.semiotic.depth_selector import DepthSelector

    result = remove_blocks(context, depth, batches, levels)
    if result.met or depth.mode == "only":
        return result.kept
    selector = DepthSelector(context.selector, result.removed)
    return selector.complete(channels(replace(context, selector=selector), result))


def curve_batches(context, images: int) -> list:
    """The fixed calibration subset every curve is measured on (whole batches for a fixed batch size)."""
    count = min(images, context.fit.count)
    if _fixed_batch(context.model):  # a fixed batch dimension takes whole batches only
        count = max(context.batch_size, count - count % context.batch_size)
    subset = context.fit.take(count, seed=context.seed)
    return [batch.inputs for batch in subset.batches(context.batch_size)]


def meter_images(context, settings: SemioticSettings) -> tuple[list, list | None]:
    """``(measured batches, refit batches)`` of the channel curves: for the masked judge the fixed subset of
    `curve_batches` and no refit; for the reconstructed judge ``images`` calibration images to measure on
    and, none of them among those, ``refit_images`` to refit every plan from (`judged_and_rows`)."""
    if settings.judge == "masked":
        return curve_batches(context, settings.images), None
    from edgeprune.search.sequential import judged_and_rows

    judged, rows = judged_and_rows(context.fit, settings.images, context.seed)
    refit = rows.take(min(settings.refit_images, rows.count), seed=context.seed)
    return _as_batches(judged, context.batch_size), _as_batches(refit, context.batch_size)


def _as_batches(data, batch_size: int) -> list:
    return [batch.inputs for batch in data.batches(batch_size)]


def _meter(context, model, analysis, images: tuple[list, list | None], settings: SemioticSettings) -> CurveMeter:
    batches, rows = images
    return CurveMeter(
        model,
        analysis,
        batches,
        settings.levels,
        context.provider,
        rows=rows,
        reconstruction=context.reconstruction,
        seed=context.seed,
    )


class _GroupsOf:
    """A curve meter of the model without the removed blocks, asked about plans in the original's groups."""

    def __init__(self, meter: CurveMeter) -> None:
        self.meter, self.ids = meter, {g.id for g in meter.analysis.prunable_groups}

    @property
    def evaluations(self) -> int:
        return self.meter.evaluations

    def curve(self, kept: Mapping[str, tuple[int, ...]]) -> SuperizationCurve:
        return self.meter.curve({gid: indices for gid, indices in kept.items() if gid in self.ids})


def _depth_meter(context, result, images: tuple[list, list | None], settings: SemioticSettings):
    """Channel curves on the model the blocks left (re-analysed: its groups are the original's minus the
    removed blocks' ones, same ids and sizes), or, where the ids do not match, on the original through masks."""
    from edgeprune.analysis import analyze
    from edgeprune.surgery.depth import inside_groups

    if result.removed:
        depth_analysis = analyze(result.model)
        inside = inside_groups(result.removed)
        sizes = {g.id: g.channels for g in depth_analysis.prunable_groups}
        if all(sizes.get(g.id) == g.channels for g in context.analysis.prunable_groups if g.id not in inside):
            return _GroupsOf(_meter(context, result.model, depth_analysis, images, settings))
        logger.info("the groups changed with the blocks removed: channel curves measured on the original")
    return _meter(context, context.model, context.analysis, images, settings)


def select_semiotic(
    selector, scores: Mapping[str, np.ndarray], meter: CurveMeter, settings: SemioticSettings, progress=None
) -> Kept:
    """Greedy chunk removal, least curve change first, until ``selector.meets``.

    With ``settings.lazy``, a step re-measures candidates in the order of their last measured change and
    stops as soon as the best fresh change is no larger than every other candidate's last one (a heuristic:
    it assumes a group's change does not fall much when other groups shrink); otherwise every candidate is
    measured at every step.
    """
    selector.check_reachable(scores)
    groups = selector.analysis.prunable_groups
    kept: Kept = {g.id: tuple(range(g.channels)) for g in groups}
    reference = meter.curve({})
    last: dict[str, tuple[float, int]] = {}  # group -> (change, order) as last measured
    steps, total = 0, _estimate_steps(selector, settings)
    while not selector.meets(kept):
        plans = {}
        for order, group in enumerate(groups):
            count = _next_count(group, len(kept[group.id]), selector, settings)
            if count is not None:
                plans[group.id] = (order, {**kept, group.id: top_channels(group, scores[group.id], count)})
        if not plans:  # every group at its floor; check_reachable has ruled this out
            break
        macs_now = selector.fractions(kept)[0]

        def measure(gid: str, plans=plans, macs_now=macs_now) -> tuple[float, int]:  # this step's candidates
            order, plan = plans[gid]
            change = curve_distance(meter.curve(plan), reference, settings.distance)
            if settings.per_mac:
                change /= max(macs_now - selector.fractions(plan)[0], 1e-12)
            last[gid] = (round(change, 9), order)
            return last[gid]

        chosen = _lazy_pick(plans, last, measure) if settings.lazy and last else min(plans, key=measure)
        kept = plans[chosen][1]
        steps += 1
        logger.debug(
            "semiotic step %d: %s -> %d channels (curve change %.4f)", steps, chosen, len(kept[chosen]), last[chosen][0]
        )
        if progress:
            progress("semiotic", min(steps, total - 1), total)
    if progress:
        progress("semiotic", total, total)
    logger.info("semiotic selection: %d steps, %d curve measurements", steps, meter.evaluations)
    return kept


def _lazy_pick(plans, last, measure) -> str:
    """Re-measure the candidate with the smallest last change until a fresh one is still the smallest."""
    fresh: set[str] = set()
    while True:
        gid = min(plans, key=lambda g: last.get(g, (-1.0, 0)))  # never measured: first
        if gid in fresh:
            return gid
        measure(gid)
        fresh.add(gid)


def _fixed_batch(model) -> bool:
    dims = {model.shapes[name][0] for name in model.input_names if model.shapes.get(name)}
    return any(isinstance(d, int) and d > 0 for d in dims)


def _next_count(group, current: int, selector, settings: SemioticSettings) -> int | None:
    """The group's kept count after one more chunk, or None when it is at its floor."""
    budget = selector.budget
    chunk = max(step(group, budget.alignment), math.ceil(settings.chunk * group.channels))
    count = valid_count(group, current - chunk, budget.floor, budget.alignment)
    if count >= current:
        count = valid_count(group, current - step(group, budget.alignment), budget.floor, budget.alignment)
    return count if count < current else None


def _estimate_steps(selector, settings: SemioticSettings) -> int:
    """A rough step count for a progress bar: the chunks between the full model and the floor."""
    return max(
        2, sum(math.ceil((1 - selector.budget.floor) / settings.chunk) for _ in selector.analysis.prunable_groups)
    )
