"""Pricing plans against a budget for one model: every strategy searches through a `Selector`.

A plan is priced exactly (by the plan cost model, without surgery); ``meets`` is the one test of whether a
plan satisfies the budget, so a new budget kind (latency, say) only has to extend it here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis, ChannelGroup
from edgeprune.cost.plan_cost import PlanCostModel
from edgeprune.errors import BudgetError
from edgeprune.selection.budget import Budget
from edgeprune.selection.counts import top_channels, valid_count

Kept = dict[str, tuple[int, ...]]


class Selector:
    """Prices plans against a budget for one model; the strategies below search through it."""

    def __init__(self, analysis: ChannelAnalysis, costs: PlanCostModel, budget: Budget) -> None:
        self.analysis, self.costs, self.budget = analysis, costs, budget
        self.full = costs.cost(np.ones(len(analysis.class_group), dtype=bool))

    def fractions(self, kept: Mapping[str, tuple[int, ...]]) -> tuple[float, float]:
        cost = self.costs.cost_of_plan(kept)
        return cost.macs / max(self.full.macs, 1), cost.params / max(self.full.params, 1)

    def meets(self, kept: Mapping[str, tuple[int, ...]]) -> bool:
        return self.budget.met(*self.fractions(kept))

    def floor_plan(self, scores: Mapping[str, np.ndarray]) -> Kept:
        """Every prunable group at its floor: the most any plan can remove."""
        return {g.id: top_channels(g, scores[g.id], self._count(g, 0)) for g in self.analysis.prunable_groups}

    def check_reachable(self, scores: Mapping[str, np.ndarray]) -> None:
        """Fail before any expensive work when frozen groups and floors make the budget impossible."""
        floor = self.floor_plan(scores)
        if self.meets(floor):
            return
        macs, params = self.fractions(floor)
        raise BudgetError(
            f"the budget ({self.budget.describe()}) cannot be reached: with the frozen groups and a floor of "
            f"{self.budget.floor:.0%} per group the best reachable is MACs {macs:.1%}, params {params:.1%} of the "
            "original; ask for at least that, or lower --floor"
        )

    def _count(self, group: ChannelGroup, wanted: float) -> int:
        return valid_count(group, wanted, self.budget.floor, self.budget.alignment)

    def plan_at(self, wanted: Callable[[ChannelGroup], float], scores: Mapping[str, np.ndarray]) -> Kept:
        return {
            g.id: top_channels(g, scores[g.id], self._count(g, wanted(g))) for g in self.analysis.prunable_groups
        }
