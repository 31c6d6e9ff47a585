"""Searching plans by evaluating them: the masked evaluator, and the RL agent (`--strategy rl`).

Only light modules are imported here; the agent (torch) is imported where it runs.
"""

from edgeprune.search.evaluator import MaskedEvaluator

__all__ = ["MaskedEvaluator"]
