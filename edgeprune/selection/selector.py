"""Pricing plans against a budget for one model: every strategy searches through a `Selector`.

A plan is priced exactly (by the plan cost model, without surgery); ``meets`` is the one test of whether a
plan satisfies the budget, so a new budget kind (latency, say) only has to extend it here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis, ChannelGroup
from edgeprune.cost.plan_cost import PlanCostModel
from edgeprune.errors import BudgetError, InputError
from edgeprune.selection.budget import Budget
from edgeprune.selection.counts import top_channels, valid_count

Kept = dict[str, tuple[int, ...]]


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
        self.full = costs.cost(np.ones(len(analysis.class_group), dtype=bool))
        if budget.needs_latency and latency is None:
            raise InputError("a latency or speed-up target needs a device to predict latency on (--device)")
        self.full_latency_ms = latency.predict(np.ones(len(analysis.class_group), dtype=bool)) if latency else None
        if budget.needs_latency and not self.full_latency_ms > 0:
            raise InputError(
                "a latency or speed-up target needs a model with conv or gemm layers of known shapes; "
                "this one has none the latency model can price (use --target-flops)"
            )

    def latency_ms(self, kept: Mapping[str, tuple[int, ...]]) -> float | None:
        """Predicted latency of a plan on the target device (None without a predictor)."""
        return None if self.latency is None else self.latency.predict(self.analysis.keep_mask(kept))

    def fractions(self, kept: Mapping[str, tuple[int, ...]]) -> tuple[float, float]:
        cost = self.costs.cost_of_plan(kept)
        return cost.macs / max(self.full.macs, 1), cost.params / max(self.full.params, 1)

    def meets(self, kept: Mapping[str, tuple[int, ...]]) -> bool:
        if not self.budget.met(*self.fractions(kept)):
            return False
        return not self.budget.needs_latency or self.budget.latency_met(self.latency_ms(kept), self.full_latency_ms)

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
            ms = self.latency_ms(floor)
            latency = f", predicted latency {ms:.3g} ms (speed-up {self.full_latency_ms / ms:.2f}x)"
        raise BudgetError(
            f"the budget ({self.budget.describe()}) cannot be reached: with the frozen groups and a floor of "
            f"{self.budget.floor:.0%} per group the best reachable is MACs {macs:.1%}, params {params:.1%} of the "
            f"original{latency}; ask for at least that, or lower --floor"
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
        ms = self.latency_ms(least)
        if self.budget.latency_met(ms, self.full_latency_ms):
            return
        raise InputError(
            f"the latency target ({self.budget.describe()}) is below what the frozen part of the model already "
            f"costs: {ms:.3g} ms predicted with every prunable group at its smallest (original "
            f"{self.full_latency_ms:.3g} ms, so at most {self.full_latency_ms / ms:.2f}x faster); ask for a target within that"
        )

    def _count(self, group: ChannelGroup, wanted: float) -> int:
        return valid_count(group, wanted, self.budget.floor, self.budget.alignment)

    def plan_at(self, wanted: Callable[[ChannelGroup], float], scores: Mapping[str, np.ndarray]) -> Kept:
        return {g.id: top_channels(g, scores[g.id], self._count(g, wanted(g))) for g in self.analysis.prunable_groups}
