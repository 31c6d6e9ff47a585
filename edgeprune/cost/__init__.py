"""Counting what a model costs, and what a plan would make it cost."""

from edgeprune.cost.counts import CostSummary, NodeCost, model_cost
from edgeprune.cost.plan_cost import PlanCostModel

__all__ = ["CostSummary", "NodeCost", "PlanCostModel", "model_cost"]
