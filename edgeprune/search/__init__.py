"""Searching plans by evaluating them: the masked evaluator, and the RL agent (`--strategy rl`).

Only light modules are imported here; the agent (torch) is imported where it runs (`edgeprune.search.rl`).
"""

from edgeprune.search.evaluator import MaskedEvaluator
from edgeprune.search.settings import AgentSettings, SearchSettings

__all__ = ["AgentSettings", "MaskedEvaluator", "SearchSettings"]
