"""Reconstruction after depth pruning: the layers of a removed residual block are gone, and the layers after
it read the block's shortcut where they read its Add (their inputs changed, so they are refitted)."""

from __future__ import annotations

from edgeprune.surgery.depth import aliases, plan_blocks, removed_nodes


def follow_removed_blocks(targets: list, original, analysis, plan) -> list:
    """``targets`` without the removed layers, each reading the tensor it now reads in the pruned model."""
    _, removed = plan_blocks(original, analysis, plan)
    if not removed:
        return targets
    gone, alias = removed_nodes(removed), aliases(removed)
    kept = []
    for target in targets:
        if target.node in gone:
            continue
        target.input = alias.get(target.input, target.input)
        if target.addend is not None:
            target.addend = alias.get(target.addend, target.addend)
        kept.append(target)
    return kept
