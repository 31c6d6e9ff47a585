"""Selection: from channel scores and a budget to a plan."""

from edgeprune.selection.budget import Budget, parse_fraction
from edgeprune.selection.counts import top_channels, valid_count
from edgeprune.selection.ranker import normalised, select_ranked, select_uniform
from edgeprune.selection.selector import Kept, Selector
from edgeprune.selection.strategies import STRATEGIES, SelectionContext, strategy

__all__ = [
    "Budget",
    "Kept",
    "STRATEGIES",
    "SelectionContext",
    "Selector",
    "normalised",
    "parse_fraction",
    "select_ranked",
    "select_uniform",
    "strategy",
    "top_channels",
    "valid_count",
]
