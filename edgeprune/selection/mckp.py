"""The multiple-choice knapsack: one option per group, least total loss, total cost within a capacity.

Solved exactly by dynamic programming over the capacity cut into ``resolution`` equal bins, each option's
cost rounded *up* to whole bins: every answer is feasible for the real costs, and it is the optimum of the
problem whose costs are those rounded ones (the optimum itself when the costs are whole numbers and the
capacity has at most ``resolution`` units, which is how the tests check it against brute force). One pass
per option, vectorised over the bins: G groups of K options cost G x K vector operations of ``resolution``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bins(costs: Sequence[np.ndarray], capacity: float, resolution: int) -> tuple[list[np.ndarray], int]:
    """The costs in whole bins (rounded up) and the capacity in bins. Whole-number costs with a capacity of
    at most ``resolution`` stay as they are (one bin per unit), so such problems are solved exactly."""
    whole = capacity == int(capacity) and all(np.array_equal(c, np.round(c)) for c in costs)
    if whole and 0 <= capacity <= resolution:
        return [np.asarray(c, dtype=np.int64) for c in costs], int(capacity)
    width = capacity / resolution
    return [np.ceil(np.asarray(c, dtype=np.float64) / width - 1e-9).astype(np.int64) for c in costs], resolution


def solve(
    losses: Sequence[np.ndarray], costs: Sequence[np.ndarray], capacity: float, resolution: int = 2000
) -> list[int] | None:
    """Per group, the index of the chosen option: least summed loss with the summed (binned) cost within
    ``capacity``; None when even the cheapest options do not fit. Costs must be zero or more.

    Ties go to the smaller total cost, then to the lower option index in the first group that differs, so
    the answer is the same on every machine."""
    if capacity < 0:
        return None
    if capacity == 0:  # only free options fit: the least loss among them, in every group
        picked = []
        for loss, cost in zip(losses, costs):
            free = np.flatnonzero(np.asarray(cost) <= 0)
            if not len(free):
                return None
            picked.append(int(free[np.argmin(np.asarray(loss)[free])]))
        return picked
    binned, limit = bins(costs, capacity, resolution)
    if sum(int(c.min()) for c in binned) > limit:
        return None
    best = np.full(limit + 1, np.inf)
    best[0] = 0.0  # best[b]: least loss of the groups so far at a total cost of exactly b bins
    choices = []
    for loss, cost in zip(losses, binned):
        new = np.full(limit + 1, np.inf)
        choice = np.full(limit + 1, -1, dtype=np.int64)
        for option, (value, size) in enumerate(zip(np.asarray(loss, dtype=np.float64), cost.tolist())):
            if size > limit:
                continue
            candidate = np.full(limit + 1, np.inf)
            candidate[size:] = best[: limit + 1 - size] + value
            better = candidate < new  # strictly: the lower option index wins a tie
            new[better], choice[better] = candidate[better], option
        best = new
        choices.append(choice)
    total = int(np.argmin(best))  # the first minimum: the smallest cost among the least losses
    if not np.isfinite(best[total]):
        return None
    picked = []
    for cost, choice in zip(reversed(binned), reversed(choices)):
        option = int(choice[total])
        picked.append(option)
        total -= int(cost[option])
    return picked[::-1]
