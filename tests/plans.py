"""Plans for tests: random per-group ratios and random channels, respecting each group's multiple."""

from __future__ import annotations

import numpy as np

from edgeprune.analysis import ChannelAnalysis
from edgeprune.surgery import PruningPlan


def random_plan(analysis: ChannelAnalysis, seed: int, low: float = 0.1, high: float = 1.0) -> PruningPlan:
    """Every prunable group keeps a random fraction in [low, high] of random channels."""
    rng = np.random.default_rng(seed)
    kept = {}
    for group in analysis.prunable_groups:
        per_segment = group.channels // group.multiple
        count = int(np.clip(round(rng.uniform(low, high) * per_segment), 1, per_segment))
        chosen = []
        for segment in range(group.multiple):
            pool = np.arange(segment * per_segment, (segment + 1) * per_segment)
            chosen.extend(sorted(rng.choice(pool, size=count, replace=False).tolist()))
        kept[group.id] = tuple(chosen)
    return PruningPlan(model_sha256=analysis.model_sha256, kept=kept, strategy="random", seed=seed)
