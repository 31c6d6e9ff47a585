"""Choosing channels to meet a budget: the global MI ranker, and the uniform baseline.

Both search one scalar (a score threshold, or a keep ratio) by bisection, pricing each candidate plan
with the exact plan cost model, so the result meets the budget by construction and keeps as much as it can.
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


def _bisect(candidates: np.ndarray, plan_for: Callable[[float], Kept], selector: Selector) -> Kept:
    """``candidates`` sorted so that later ones prune more; return the first plan that meets the budget."""
    low, high = 0, len(candidates) - 1
    best = plan_for(candidates[high])
    if not selector.meets(best):
        return best  # only the floor plan is left; check_reachable has already ruled this out
    while low < high:
        middle = (low + high) // 2
        plan = plan_for(candidates[middle])
        if selector.meets(plan):
            best, high = plan, middle
        else:
            low = middle + 1
    return best


def normalised(scores: np.ndarray) -> np.ndarray:
    """Scores on [0, 1] per group (divided by the group's best), so groups compare on one scale."""
    top = float(np.max(scores)) if scores.size else 0.0
    return scores / top if top > 0 else np.zeros_like(scores, dtype=np.float64)


def select_ranked(selector: Selector, scores: Mapping[str, np.ndarray]) -> Kept:
    """Global ranking: drop the lowest normalised scores across all groups until the budget is met."""
    selector.check_reachable(scores)
    norm = {gid: normalised(np.asarray(s, dtype=np.float64)) for gid, s in scores.items()}
    thresholds = np.unique(np.concatenate([norm[g.id] for g in selector.analysis.prunable_groups] + [[0.0]]))

    def plan_for(threshold: float) -> Kept:
        return selector.plan_at(lambda g: float(np.sum(norm[g.id] > threshold)), scores)

    return _bisect(np.concatenate([[-1.0], thresholds]), plan_for, selector)


def select_uniform(selector: Selector, scores: Mapping[str, np.ndarray]) -> Kept:
    """The baseline: the same keep ratio in every group (channels inside a group still by score)."""
    selector.check_reachable(scores)
    ratios = np.linspace(1.0, 0.0, 401)
    return _bisect(ratios, lambda r: selector.plan_at(lambda g: r * g.channels, scores), selector)
