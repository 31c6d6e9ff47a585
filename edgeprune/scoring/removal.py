"""Greedy channel removal by the least-squares refit error of the consumers (the `refit-error` criterion).

For one group, each consumer's ridge least-squares fit of its original outputs from its inputs is solved
once from its centred Gram matrices. Channels are then removed greedily, each step taking the channel
whose removal raises the consumers' best refit error least. Removing a block S of inputs from a least-
squares fit raises its residual by tr(W_S^T (P_SS)^-1 W_S), with W the fitted weights and P the inverse
(regularised) Gram matrix, and the same quantities update the fit and P for the inputs left (the block form
of Optimal Brain Surgeon), so no step refits from scratch.

A channel's score is the refit error once it is gone: the group's summed relative residual (each
consumer's added residual over its output's centred sum of squares), so scores rise along the removal
order. The best k by score are exactly the k channels the greedy keeps, and scores of different groups are
on one scale (fractions of output variance lost), which is what the global ranking compares.
"""

from __future__ import annotations

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis, ChannelGroup


class _ConsumerFit:
    """One consumer's fit restricted to the columns still present, and which of them are this group's."""

    def __init__(self, xx: np.ndarray, xy: np.ndarray, y_square: float, owner: np.ndarray, ridge: float) -> None:
        penalty = ridge * max(float(np.trace(xx)) / max(len(xx), 1), 1e-12)
        self.inverse = np.linalg.inv(xx + penalty * np.eye(len(xx)))
        self.weight = self.inverse @ xy
        self.scale = 1.0 / y_square
        self.owner = owner  # per column: the group channel it belongs to, or -1 for other groups' columns

    def columns_of(self, channels: np.ndarray) -> np.ndarray:
        """(len(channels), m) column indices of sorted ``channels`` that this consumer reads (m columns each:
        every channel of one tensor owns as many)."""
        hits = np.flatnonzero(np.isin(self.owner, channels))
        order = np.argsort(self.owner[hits], kind="stable")
        return hits[order].reshape(len(channels), -1)

    def costs(self, channels: np.ndarray) -> np.ndarray:
        """Added relative residual of removing each of the sorted ``channels`` on its own (0 if not read here)."""
        result = np.zeros(len(channels))
        present = np.isin(channels, self.owner)
        if not present.any():
            return result
        cols = self.columns_of(channels[present])
        blocks = self.inverse[cols[:, :, None], cols[:, None, :]]
        weights = self.weight[cols]
        solved = np.linalg.solve(blocks, weights)
        result[present] = np.einsum("cmk,cmk->c", weights, solved) * self.scale
        return result

    def remove(self, channels: np.ndarray) -> float:
        """Drop ``channels`` from the fit; returns the added relative residual of removing them together."""
        channels = np.sort(channels)
        channels = channels[np.isin(channels, self.owner)]
        if not len(channels):
            return 0.0
        cols = self.columns_of(channels).ravel()
        block = self.inverse[np.ix_(cols, cols)]
        across = self.inverse[:, cols]
        weights = self.weight[cols]
        added = float(np.sum(weights * np.linalg.solve(block, weights))) * self.scale
        self.weight = self.weight - across @ np.linalg.solve(block, weights)
        self.inverse = self.inverse - across @ np.linalg.solve(block, across.T)
        keep = np.ones(len(self.owner), dtype=bool)
        keep[cols] = False
        self.inverse, self.weight, self.owner = self.inverse[np.ix_(keep, keep)], self.weight[keep], self.owner[keep]
        return added


def removal_scores(grams, analysis: ChannelAnalysis, group: ChannelGroup, ridge: float = 1e-3,
                   chunk: int = 32) -> np.ndarray | None:
    """Scores (channels,) of ``group``: the refit error when each channel is removed greedily (see above).

    ``grams`` are the consumers' statistics (`capture_grams`). Each step removes max(1, alive // ``chunk``)
    channels, the cheapest first, so a group of 64 or fewer goes one channel at a time and a large one in
    proportionate steps. None when no consumer of the group was measured (the caller falls back).
    """
    index = analysis.group_index(group.id)
    fits = []
    for gram in grams.grams:
        mine = analysis.class_group[gram.consumer.columns] == index
        xx, xy, y_square = gram.centred()
        if not mine.any() or y_square <= 0.0:
            continue
        owner = np.where(mine, analysis.class_index[gram.consumer.columns], -1)
        fits.append(_ConsumerFit(xx, xy, y_square, owner, ridge))
    if not fits:
        return None
    alive = np.arange(group.channels)
    scores = np.zeros(group.channels)
    lost = 0.0
    while len(alive):
        costs = sum(fit.costs(alive) for fit in fits)
        take = np.argsort(costs, kind="stable")[: max(1, len(alive) // chunk)]
        scores[alive[take]] = lost + costs[take]  # within a step, the cheaper goes first
        lost += sum(fit.remove(alive[take]) for fit in fits)
        alive = np.delete(alive, take)
    return scores
