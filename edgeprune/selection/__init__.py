"""Selection: from channel scores and a budget to a plan."""

from edgeprune.selection.budget import Budget, parse_fraction
from edgeprune.selection.counts import top_channels, valid_count
from edgeprune.selection.ranker import Selector, normalised, select_ranked, select_uniform

__all__ = ["Budget", "Selector", "normalised", "parse_fraction", "select_ranked", "select_uniform", "top_channels",
           "valid_count"]
