"""edgeprune: ONNX-in, ONNX-out channel pruning for edge devices, with proof.

The stages are plain functions over typed objects::

    model = load_model("model.onnx")          # ModelGraph, normalised
    analysis = analyze(model)                 # ChannelAnalysis: groups, prunable or frozen and why
    plan = simple_plan(analysis, ratio=0.5)   # PruningPlan
    pruned = apply_plan(model, analysis, plan)
    assert verify(model, analysis, plan, pruned).passed

Names are imported on first use, so the command line starts instantly.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ChannelAnalysis": "edgeprune.analysis",
    "ChannelGroup": "edgeprune.analysis",
    "analyze": "edgeprune.analysis",
    "CostSummary": "edgeprune.cost",
    "PlanCostModel": "edgeprune.cost",
    "model_cost": "edgeprune.cost",
    "BudgetError": "edgeprune.errors",
    "EdgepruneError": "edgeprune.errors",
    "InputError": "edgeprune.errors",
    "VerificationError": "edgeprune.errors",
    "ModelGraph": "edgeprune.graph",
    "load_model": "edgeprune.graph",
    "PruningPlan": "edgeprune.surgery",
    "apply_plan": "edgeprune.surgery",
    "simple_plan": "edgeprune.surgery",
    "verify": "edgeprune.surgery",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'edgeprune' has no attribute {name!r}")
