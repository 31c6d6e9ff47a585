"""The selection strategies by name, and what each one is given to work with.

A strategy is a function ``(SelectionContext) -> Kept``: it may only use the selector to price plans, so every
strategy meets the same budget in the same way. Strategies are named here and imported when first used, so a
heavy one (torch for the RL agent) costs nothing to the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgeprune.errors import InputError

if TYPE_CHECKING:  # kept light: the CLI reads STRATEGIES before anything heavy is imported
    import numpy as np

    from edgeprune.selection.selector import Kept, Selector

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SelectionContext:
    """Everything a strategy may read. ``scores``: one score per channel for every prunable group.

    ``fit`` is the calibration data for scoring and fitting (never the held-out part); ``settings`` the
    strategy's own settings (``SearchSettings`` for rl, ``SemioticSettings`` for semiotic,
    ``KnapsackSettings`` for knapsack, the selection table for the rankers; None: the strategy's defaults);
    ``seed``, ``batch_size`` and ``provider`` the run's; ``progress`` a stage callback or None;
    ``reconstruction`` the run's `ReconstructionSettings` (None: their defaults), for a strategy that judges
    plans as reconstruction would leave them.
    """

    model: Any  # ModelGraph
    analysis: Any  # ChannelAnalysis
    selector: Selector
    scores: Mapping[str, np.ndarray]
    fit: Any = None  # CalibrationSet
    settings: Any = None
    seed: int = 0
    batch_size: int = 64
    provider: str = "auto"
    progress: Progress | None = None
    reconstruction: Any = None  # ReconstructionSettings


Strategy = Callable[[SelectionContext], "Kept"]

# name -> "module:function"; the function takes a SelectionContext
STRATEGIES: dict[str, str] = {
    "mi": "edgeprune.selection.ranker:ranked_strategy",
    "uniform": "edgeprune.selection.ranker:uniform_strategy",
    "semiotic": "edgeprune.semiotic.strategy:semiotic_strategy",
    "rl": "edgeprune.search.rl:rl_strategy",
    "knapsack": "edgeprune.selection.knapsack:knapsack_strategy",
}


def settings_for(name: str, selection: Any) -> Any:
    """The part of the ``[selection]`` table that strategy ``name`` reads: its own sub-table where it has
    one (``rl``, ``semiotic``, ``knapsack``), else the table itself (the rankers read ``normalise``)."""
    return getattr(selection, name, selection)


def strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise InputError(f"unknown strategy '{name}'; choose one of {', '.join(STRATEGIES)}")
    module, function = STRATEGIES[name].split(":")
    return getattr(importlib.import_module(module), function)
