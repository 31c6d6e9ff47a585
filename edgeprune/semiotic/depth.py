"""Depth pruning by the semiotic rule (P3; docs/results-depth.md): remove the residual blocks that
superize least, one at a time, while the measure holds.

Each step measures, on the model as it stands (the blocks removed so far bypassed and the layers after them
refitted), the spatial aura entropy of the saliency map (channel mean) entering and leaving every remaining
removable block; Delta H_b = H(out) - H(in) is the block's superization. The block of smallest |Delta H_b|
is tried first (ties: the earlier block): it is bypassed, the layers after it are refitted by least squares
on a part of the calibration data, and the result is judged on the rest (accuracy with labels, top-1
agreement with the original without). The block is taken when the measure drops by at most the guard;
otherwise the next smallest is tried, and a rejected block is not tried again. Steps stop when the budget is
met or no block is left to try; the stage guard keeps at least ``stage_keep`` residual blocks per stage.
Only blocks with a channel group of their own are candidates: emptying those groups is how a plan made of
kept channels says the block is gone (`edgeprune.analysis.blocks`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from edgeprune.analysis.blocks import ResidualBlock, find_blocks
from edgeprune.errors import BudgetError, InputError
from edgeprune.semiotic.curve import CurveAccumulator
from edgeprune.semiotic.layers import SaliencyLayer
from edgeprune.semiotic.settings import DepthSettings
from edgeprune.surgery.depth import aliases, stage_allows, with_removed

logger = logging.getLogger(__name__)

JUDGE_SHARE = 0.25  # of the calibration fit set: judges each removal; the rest refits the layers after it


@dataclass(frozen=True)
class DepthStep:
    block: str
    delta: float  # Delta H_b on the model of that step
    drop: float  # points of the measure lost with it (and the blocks before it), after the refit
    taken: bool


@dataclass(frozen=True)
class DepthResult:
    """The blocks taken, the model without them (refitted), and every block tried on the way."""

    removed: tuple[ResidualBlock, ...]
    model: object  # ModelGraph: the original without the removed blocks, the layers after them refitted
    steps: tuple[DepthStep, ...]
    met: bool  # the budget is met by the blocks alone

    @property
    def kept(self) -> dict[str, tuple[int, ...]]:
        return with_removed({}, self.removed)


def remove_blocks(context, depth: DepthSettings, batches: Sequence, levels: int | None = None) -> DepthResult:
    """The depth phase of a strategy: ``context`` a `SelectionContext`, ``batches`` the curve images."""
    selector = context.selector
    blocks = find_blocks(context.model, context.analysis)
    candidates = [b for b in blocks.blocks if b.internal_groups]
    if not candidates and depth.mode == "only":
        raise InputError(
            "--depth only: the model has no removable residual block (an identity shortcut around a branch "
            "with a channel group of its own); `edgeprune inspect` lists the residual joins and why; use --depth on"
        )
    search = _Search(context, depth, batches, levels)
    while not selector.meets(with_removed({}, search.removed)):
        taken = [
            b
            for b in candidates
            if b not in search.removed
            and b.id not in search.rejected
            and stage_allows(blocks, [r.id for r in search.removed], b, depth.stage_keep)
        ]
        if not taken or not search.step(taken):
            break
    removed = search.removed
    met = selector.meets(with_removed({}, removed))
    logger.info("depth: %d of %d removable blocks removed (%d tried)", len(removed), len(candidates), len(search.steps))
    if depth.mode == "only" and not met:
        raise BudgetError(_short_of(selector, removed, depth))
    return DepthResult(tuple(removed), search.current, tuple(search.steps), met)


class _Search:
    """The state of the greedy: blocks taken, blocks rejected, every try, the current (refitted) model."""

    def __init__(self, context, depth: DepthSettings, batches: Sequence, levels: int | None) -> None:
        self.context, self.depth, self.batches, self.levels = context, depth, batches, levels
        self.refit_set, self.judge_set = context.fit.split(JUDGE_SHARE, seed=context.seed)
        self.removed: list[ResidualBlock] = []
        self.rejected: set[str] = set()
        self.steps: list[DepthStep] = []
        self.current = context.model

    def step(self, open_: Sequence[ResidualBlock]) -> bool:
        """Try the open blocks, least |Delta H| first, until one holds the guard; False when none does."""
        deltas = block_deltas(
            self.current, open_, self.removed, self.batches, self.levels, self.context.provider, self.context.analysis
        )
        for block in sorted(open_, key=lambda b: (abs(deltas[b.id]), open_.index(b))):
            rebuilt, drop = _judge(self.context, [*self.removed, block], self.refit_set, self.judge_set)
            taken = drop <= self.depth.guard + 1e-9
            self.steps.append(DepthStep(block.id, round(deltas[block.id], 6), round(drop, 3), taken))
            logger.info(
                "depth: %s (Delta H %.4f) loses %.2f points: %s",
                block.id,
                deltas[block.id],
                drop,
                "removed" if taken else "kept",
            )
            if taken:
                self.removed.append(block)
                self.current = rebuilt
                return True
            self.rejected.add(block.id)
        return False


def _short_of(selector, removed: Sequence[ResidualBlock], depth: DepthSettings) -> str:
    kept = with_removed({}, removed)
    macs = selector.fractions(kept)[0]
    speed = ""
    if selector.latency is not None:
        speed = f", predicted speed-up {selector.full_latency_ms / selector.latency_ms(kept):.2f}x"
    return (
        f"--depth only: the {len(removed)} residual blocks the guards let go (depth-guard {depth.guard:g} points, "
        f"depth-stage-keep {depth.stage_keep}) leave MACs {macs:.1%}{speed}, short of the budget "
        f"({selector.budget.describe()}); nothing was written (allow channels too: --depth on)"
    )


def block_deltas(
    model, blocks: Sequence[ResidualBlock], removed: Sequence[ResidualBlock], batches, levels, provider, analysis=None
) -> dict[str, float]:
    """Per block, Delta H_b = H(its output) - H(its input) of the channel-mean saliency maps on ``batches``,
    measured on ``model`` (the original without ``removed``: a block's input may now be an earlier one's).
    ``analysis`` (the original's channel analysis) says which maps are channels-last; without it all are N,C,H,W."""
    from edgeprune.capture.session import ActivationRunner

    alias = aliases(removed)
    ends = {b.id: (alias.get(b.shortcut, b.shortcut), _output_map(model, b.output)) for b in blocks}
    tensors = sorted({t for pair in ends.values() for t in pair})
    layers = [SaliencyLayer(t, t, (), 0, _channel_axis(analysis, t)) for t in tensors]
    accumulator = CurveAccumulator(layers, levels)
    runner = ActivationRunner(model, tensors, provider)
    for feeds in batches:
        accumulator.update(runner.run(feeds))
    entropy = dict(zip(tensors, accumulator.curve().entropies.tolist()))
    return {b: entropy[out] - entropy[inp] for b, (inp, out) in ends.items()}


def _channel_axis(analysis, tensor: str) -> int:
    """Where a block end's channels are, as the channel analysis tracks them and capture reads them: on the
    last axis of a channels-last (N,H,W,C) residual stream, else on axis 1."""
    channels = None if analysis is None else analysis.tensors.get(tensor)
    return 3 if channels is not None and channels.axis == 3 else 1


def _judge(context, removed: Sequence[ResidualBlock], refit_set, judge_set):
    """(the model without ``removed``, refitted on ``refit_set``; the points it loses on ``judge_set``)."""
    from types import MappingProxyType

    from edgeprune.evaluate import compare
    from edgeprune.reconstruct import reconstruct
    from edgeprune.surgery import PruningPlan, apply_plan

    analysis = context.analysis
    plan = PruningPlan(analysis.model_sha256, MappingProxyType(with_removed({}, removed)))
    pruned = apply_plan(context.model, analysis, plan)
    rebuilt, _ = reconstruct(
        context.model,
        pruned,
        analysis,
        plan,
        refit_set,
        batch_size=context.batch_size,
        provider=context.provider,
        seed=context.seed,
    )
    result = compare(context.model, rebuilt, judge_set, batch_size=context.batch_size, provider=context.provider)
    drop = result.drop_points if result.drop_points is not None else 100.0 * result.output_error  # no measure: error
    return rebuilt, float(drop)


_ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "HardSwish", "Sigmoid", "Gelu", "Elu", "Selu")


def _output_map(model, output: str) -> str:
    """The map a block hands on: its Add's output, or the activation's when that is the Add's only reader, so
    that a block's input (the previous block's handed-on map) and output are measured alike."""
    readers = [node for node in model.proto.graph.node if output in node.input]
    if len(readers) == 1 and readers[0].op_type in _ACTIVATIONS:
        return readers[0].output[0]
    return output
