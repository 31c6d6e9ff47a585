"""Choosing channels to meet a budget: the global MI ranker, and the uniform baseline.

Both search one scalar (a score threshold, or a keep ratio) by bisection, pricing each candidate plan
with the exact plan cost model, so the result meets the budget by construction and keeps as much as it can.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from edgeprune.selection.selector import Kept, Selector


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


def ranked_strategy(context) -> Kept:
    return select_ranked(context.selector, context.scores)


def uniform_strategy(context) -> Kept:
    return select_uniform(context.selector, context.scores)
