"""Pricing plans against a budget for one model: every strategy searches through a `Selector`.

A plan is priced exactly (by the plan cost model, without surgery); ``meets`` is the one test of whether a
plan satisfies the budget, so a new budget kind (latency, say) only has to extend it here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis, ChannelGroup
from edgeprune.cost.plan_cost import PlanCostModel
from edgeprune.errors import BudgetError, InputError
from edgeprune.selection.budget import RELAXED_FLOOR, Budget
from edgeprune.selection.counts import top_channels, valid_count

Kept = dict[str, tuple[int, ...]]

logger = logging.getLogger(__name__)


class LatencyPredictor(Protocol):
    """Predicted latency (ms) of a plan given as the analysis' keep mask; monotone non-decreasing in every
    kept channel (the strategies bisect on it). `edgeprune.hardware.LatencyModel` is one."""

    def predict(self, keep: np.ndarray) -> float: ...


class Selector:
    """Prices plans against a budget for one model; the strategies below search through it.

    ``latency``: a predictor for the target device; required when the budget has a latency or speed-up target.
    """

    def __init__(
        self, analysis: ChannelAnalysis, costs: PlanCostModel, budget: Budget, latency: LatencyPredictor | None = None
    ) -> None:
        self.analysis, self.costs, self.budget, self.latency = analysis, costs, budget, latency
        self.requested = budget  # what was asked; ``budget`` is it after any relaxation of the defaults
        self.full = costs.cost(np.ones(len(analysis.class_group), dtype=bool))
        if budget.needs_latency and latency is None:
            raise InputError("a latency or speed-up target needs a device to predict latency on (--device)")
        self.full_latency_ms = latency.predict(np.ones(len(analysis.class_group), dtype=bool)) if latency else None
        if budget.needs_latency and not (self.full_latency_ms or 0.0) > 0:
            raise InputError(
                "a latency or speed-up target needs a model with conv or gemm layers of known shapes; "
                "this one has none the latency model can price (use --target-flops)"
            )
        self.budget = relaxed(self, budget)

    def latency_ms(self, kept: Mapping[str, tuple[int, ...]]) -> float | None:
        """Predicted latency of a plan on the target device (None without a predictor)."""
        return None if self.latency is None else self.latency.predict(self.analysis.keep_mask(kept))

    def fractions(self, kept: Mapping[str, tuple[int, ...]]) -> tuple[float, float]:
        cost = self.costs.cost_of_plan(kept)
        return cost.macs / max(self.full.macs, 1), cost.params / max(self.full.params, 1)

    def meets(self, kept: Mapping[str, tuple[int, ...]]) -> bool:
        if not self.budget.met(*self.fractions(kept)):
            return False
        return not self.budget.needs_latency or self.budget.latency_met(*self._latencies(kept))

    def _latencies(self, kept: Mapping[str, tuple[int, ...]]) -> tuple[float, float]:
        """(predicted latency of the plan, of the original): only asked for with a latency budget, which
        always has a predictor (checked when the selector is made)."""
        ms, full = self.latency_ms(kept), self.full_latency_ms
        assert ms is not None and full is not None
        return ms, full

    def usage(self, keep: np.ndarray) -> float:
        """How much of the budget a plan (the analysis' keep mask) spends: the largest of its cost over each
        target (MACs, params, predicted latency; a speed-up target as latency x speed-up over the original's).
        At most 1 (within rounding) when `meets` holds; the knapsack prices plans by it."""
        budget, parts = self.budget, []
        if budget.macs is not None or budget.params is not None:
            cost = self.costs.cost(keep)
            if budget.macs is not None:
                parts.append(cost.macs / max(self.full.macs, 1) / budget.macs)
            if budget.params is not None:
                parts.append(cost.params / max(self.full.params, 1) / budget.params)
        if budget.needs_latency:
            assert self.latency is not None and self.full_latency_ms is not None  # checked when made
            ms = self.latency.predict(keep)
            if budget.latency_ms is not None:
                parts.append(ms / budget.latency_ms)
            if budget.speedup is not None:
                parts.append(ms * budget.speedup / self.full_latency_ms)
        return max(parts)

    def floor_plan(self, scores: Mapping[str, np.ndarray]) -> Kept:
        """Every prunable group at its floor: the most any plan can remove."""
        return {g.id: top_channels(g, scores[g.id], self._count(g, 0)) for g in self.analysis.prunable_groups}

    def check_reachable(self, scores: Mapping[str, np.ndarray]) -> None:
        """Fail before any expensive work when frozen groups and floors make the budget impossible."""
        floor = self.floor_plan(scores)
        if self.meets(floor):
            return
        self._check_frozen_latency(scores)
        macs, params = self.fractions(floor)
        latency = ""
        if self.budget.needs_latency:
            ms, full = self._latencies(floor)
            latency = f", predicted latency {ms:.3g} ms (speed-up {full / ms:.2f}x)"
        relaxed_note = " (the defaults relaxed as far as they may)" if self.budget != self.requested else ""
        advice = "or lower --floor" if not self.budget.relax_floor else "or give a lower --floor"
        raise BudgetError(
            f"the budget ({self.budget.describe()}) cannot be reached: with the frozen groups and a floor of "
            f"{self.budget.floor:.0%} per group{relaxed_note} the best reachable is MACs {macs:.1%}, params "
            f"{params:.1%} of the original{latency}; ask for at least that, {advice}"
        )

    def _check_frozen_latency(self, scores: Mapping[str, np.ndarray]) -> None:
        """A latency target below what the frozen part alone costs (every prunable group at its smallest
        allowed count, whatever the floor) is a mistake in the request, not a budget to search for."""
        if not self.budget.needs_latency:
            return
        least = {
            g.id: top_channels(g, scores[g.id], valid_count(g, 0, 0.0, self.budget.alignment))
            for g in self.analysis.prunable_groups
        }
        ms, full = self._latencies(least)
        if self.budget.latency_met(ms, full):
            return
        raise InputError(
            f"the latency target ({self.budget.describe()}) is below what the frozen part of the model already "
            f"costs: {ms:.3g} ms predicted with every prunable group at its smallest (original "
            f"{full:.3g} ms, so at most {full / ms:.2f}x faster); ask for a target within that"
        )

    def _count(self, group: ChannelGroup, wanted: float) -> int:
        return valid_count(group, wanted, self.budget.floor, self.budget.alignment, self.budget.fine)

    def counts(self, group: ChannelGroup) -> list[int]:
        """Every count group ``group`` may keep under the budget's floor and alignment, smallest first."""
        return sorted({self._count(group, wanted) for wanted in range(group.channels + 1)})

    def plan_at(self, wanted: Callable[[ChannelGroup], float], scores: Mapping[str, np.ndarray]) -> Kept:
        return {g.id: top_channels(g, scores[g.id], self._count(g, wanted(g))) for g in self.analysis.prunable_groups}


def _floor_meets(selector: Selector, budget: Budget) -> bool:
    """Whether every prunable group at its floor under ``budget`` meets the selector's targets."""
    kept = {
        g.id: tuple(range(valid_count(g, 0, budget.floor, budget.alignment, budget.fine)))
        for g in selector.analysis.prunable_groups
    }
    if not budget.met(*selector.fractions(kept)):
        return False
    return not budget.needs_latency or budget.latency_met(*selector._latencies(kept))


def relaxed(selector: Selector, budget: Budget) -> Budget:
    """``budget``, or, when its default floor or alignment forbids it, the first of these that does not:
    the floor lowered to RELAXED_FLOOR; groups at most two alignment steps wide in half steps (at the floor
    asked, then at RELAXED_FLOOR). Levels rather than the least relaxation that just reaches the budget, so
    that the strategies keep room to choose; a floor or an alignment given explicitly never gives way."""
    if _floor_meets(selector, budget) or not (budget.relax_floor or budget.relax_alignment):
        return budget
    levels = []
    if budget.relax_floor:
        levels.append(replace(budget, floor=min(budget.floor, RELAXED_FLOOR)))
    if budget.relax_alignment:
        levels.append(replace(budget, fine=True))
        if budget.relax_floor:
            levels.append(replace(budget, fine=True, floor=min(budget.floor, RELAXED_FLOOR)))
    for level in levels:
        if _floor_meets(selector, level):
            logger.warning(
                "the budget (%s) cannot be met with a floor of %.0f%% per group and channels in steps of %d: %s "
                "(give --floor and --align to stop instead)",
                budget.describe(),
                100 * budget.floor,
                budget.alignment,
                _describe_relaxation(budget, level),
            )
            return level
    return levels[-1]  # unreachable even so: check_reachable says what the loosest level reaches


def _describe_relaxation(asked: Budget, level: Budget) -> str:
    parts = []
    if level.floor != asked.floor:
        parts.append(f"the floor is lowered to {level.floor:.0%}")
    if level.fine:
        parts.append(
            f"groups of at most {2 * asked.alignment} channels keep counts in steps of {max(asked.alignment // 2, 1)}"
        )
    return " and ".join(parts)
