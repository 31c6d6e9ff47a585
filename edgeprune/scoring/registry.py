"""Channel criteria by name: each turns activation statistics (or weights) into one score per channel.

Higher scores mean more important. Every criterion that reads activations multiplies by the fraction of
images on which the map is alive, so a dead map (constant, entropy 0) never looks good.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis, ChannelGroup
from edgeprune.errors import InputError
from edgeprune.graph.model import ModelGraph


@dataclass(frozen=True)
class ChannelScores:
    """One score per channel of one group; ``fallback`` names the criterion used when the asked one had no data."""

    group: str
    scores: np.ndarray
    criterion: str
    fallback: str | None = None


@dataclass(frozen=True)
class ScoringContext:
    model: ModelGraph
    analysis: ChannelAnalysis
    stats: object | None  # ActivationStats, or None for weight-only criteria
    seed: int = 0
    grams: object | None = None  # ConsumerGrams, for criteria that read the consumers' refit statistics
    ridge: float = 1e-3
    params: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))


Scorer = Callable[[ScoringContext, ChannelGroup], "np.ndarray | None"]
SCORERS: dict[str, Scorer] = {}
MEASURES: dict[str, frozenset[str] | None] = {}  # per criterion: the statistics it reads; None: weights only
# The default criterion: measured on the reference models, channels chosen for the least-squares
# reconstruction lose far less accuracy than the aura-MI ranking (docs/results-resnet20.md).
DEFAULT_CRITERION = "refit-error"
READS_GRAMS: set[str] = set()  # criteria that read the consumers' least-squares statistics (`capture_grams`)


def register_scorer(
    name: str, *, measures: frozenset[str] | None = frozenset(), grams: bool = False
) -> Callable[[Scorer], Scorer]:
    """``measures``: the statistics the criterion reads besides dead maps and moments (see
    `capture_stats`); None for a criterion that needs no activation maps at all. ``grams``: it reads
    the consumers' least-squares statistics instead."""

    def register(function: Scorer) -> Scorer:
        SCORERS[name] = function
        MEASURES[name] = measures
        if grams:
            READS_GRAMS.add(name)
        return function

    return register


def criteria() -> tuple[str, ...]:
    """Every criterion's name, sorted (what --criterion accepts)."""
    from edgeprune.scoring import criteria as _  # noqa: F401  (registers the criteria)

    return tuple(sorted(SCORERS))


def scorer(name: str) -> Scorer:
    from edgeprune.scoring import criteria  # noqa: F401  (registers the criteria)

    if name not in SCORERS:
        raise InputError(f"unknown criterion '{name}'; choose one of {', '.join(sorted(SCORERS))}")
    return SCORERS[name]


def needs_activations(name: str) -> bool:
    scorer(name)
    return MEASURES[name] is not None


def needs_grams(name: str) -> bool:
    scorer(name)
    return name in READS_GRAMS


def measures_for(name: str) -> frozenset[str]:
    scorer(name)
    return MEASURES[name] or frozenset()


def score_groups(context: ScoringContext, criterion: str, fallback: str = "l1") -> dict[str, ChannelScores]:
    """Scores for every prunable group; a group the criterion cannot measure is scored by ``fallback``."""
    function, backup = scorer(criterion), scorer(fallback)
    result = {}
    for group in context.analysis.prunable_groups:
        values = function(context, group)
        used = None
        if values is None:
            values, used = backup(context, group), fallback
        if values is None:
            raise InputError(f"group {group.id} cannot be scored by {criterion} or {fallback}")
        result[group.id] = ChannelScores(group.id, np.asarray(values, dtype=np.float64), criterion, used)
    return result


def per_channel(context: ScoringContext, group: ChannelGroup, field_name: str) -> np.ndarray | None:
    """Average a per-position statistic over every capture point that sees this group's channels."""
    analysis = context.analysis
    index = analysis.group_index(group.id)
    total = np.zeros(group.channels)
    seen = np.zeros(group.channels)
    stats: Any = context.stats  # ActivationStats
    for point in stats.points if stats is not None else ():
        values = point.values.get(field_name)
        if values is None:
            continue
        classes = analysis.tensors[point.point.tensor].classes
        mine = analysis.class_group[classes] == index
        local = analysis.class_index[classes[mine]]
        np.add.at(total, local, values[mine])
        np.add.at(seen, local, 1)
    if not seen.any():
        return None
    return np.divide(total, seen, out=np.zeros_like(total), where=seen > 0)
