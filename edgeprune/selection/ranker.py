"""Choosing channels to meet a budget: the global MI ranker, and the uniform baseline.

Both search one scalar (a score threshold, or a keep ratio) by bisection, pricing each candidate plan
with the exact plan cost model, so the result meets the budget by construction and keeps as much as it can.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from edgeprune.errors import InputError
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


def _by_mean(scores: np.ndarray) -> np.ndarray:
    mean = float(np.mean(scores)) if scores.size else 0.0
    return scores / mean if mean > 0 else np.zeros_like(scores, dtype=np.float64)


def _by_max(scores: np.ndarray) -> np.ndarray:
    top = float(np.max(scores)) if scores.size else 0.0
    return scores / top if top > 0 else np.zeros_like(scores, dtype=np.float64)


# How scores of different groups are put on one scale before the global ranking. "mean" (the default):
# a channel is judged against its group's average, so a group whose scores are spread loses its weak
# channels and a group of equally useful channels is cut evenly. Measured on the ResNet-20 reference model
# (docs/results-resnet20.md): with aura-mi it loses half the accuracy that "max" does at 2x; with
# refit-error, whose raw scores already share one scale, it is as good as "none" at 2x and better at 5x.
# "max": against the group's best channel. "none": raw scores.
NORMALISATIONS = {"mean": _by_mean, "max": _by_max, "none": lambda scores: scores}


def normalised(scores: np.ndarray, how: str = "mean") -> np.ndarray:
    """A group's scores on the common scale of the global ranking (see NORMALISATIONS)."""
    if how not in NORMALISATIONS:
        raise InputError(f"unknown normalisation '{how}'; choose one of {', '.join(NORMALISATIONS)}")
    return NORMALISATIONS[how](np.asarray(scores, dtype=np.float64))


def select_ranked(selector: Selector, scores: Mapping[str, np.ndarray], normalisation: str = "mean") -> Kept:
    """Global ranking: drop the lowest normalised scores across all groups until the budget is met."""
    selector.check_reachable(scores)
    norm = {gid: normalised(s, normalisation) for gid, s in scores.items()}
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
    how = context.settings.normalise if context.settings is not None else "mean"
    return select_ranked(context.selector, context.scores, how)


def uniform_strategy(context) -> Kept:
    return select_uniform(context.selector, context.scores)
