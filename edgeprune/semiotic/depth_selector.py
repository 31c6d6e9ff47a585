"""Pricing channel plans after blocks were removed: a `Selector` seen through the removed blocks.

Every plan it prices or makes has the groups inside the removed blocks emptied (which is what prices those
blocks as gone: `edgeprune.analysis.blocks`), and the groups it offers a channel strategy leave them out, so
any strategy that searches through a selector (the rankers, the semiotic greedy) chooses channels on top of
the depth already taken, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from edgeprune.analysis.blocks import ResidualBlock, removed_positions
from edgeprune.errors import BudgetError
from edgeprune.surgery.depth import inside_groups, with_removed


class _AnalysisView:
    """The channel analysis with the removed blocks' groups left out of ``prunable_groups``."""

    def __init__(self, analysis, hidden: set[str]) -> None:
        self._analysis, self._hidden = analysis, hidden

    @property
    def prunable_groups(self):
        return tuple(g for g in self._analysis.prunable_groups if g.id not in self._hidden)

    def __getattr__(self, name: str):
        if name == "_analysis":
            raise AttributeError(name)
        return getattr(self._analysis, name)


class DepthSelector:
    """``base`` (a `Selector`) with ``removed`` taken: the methods the strategies call, depth included."""

    def __init__(self, base, removed: Sequence[ResidualBlock]) -> None:
        self.base, self.removed = base, tuple(removed)
        self.analysis = _AnalysisView(base.analysis, inside_groups(self.removed))
        self._gone = removed_positions(base.analysis, self.removed)

    def __getattr__(self, name: str):  # budget, costs, full, full_latency_ms, latency, counts, ...
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    def complete(self, kept: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """``kept`` with the removed blocks emptied: the plan a strategy hands back."""
        return with_removed(kept, self.removed)

    def meets(self, kept: Mapping[str, tuple[int, ...]]) -> bool:
        return self.base.meets(self.complete(kept))

    def fractions(self, kept: Mapping[str, tuple[int, ...]]) -> tuple[float, float]:
        return self.base.fractions(self.complete(kept))

    def latency_ms(self, kept: Mapping[str, tuple[int, ...]]) -> float | None:
        return self.base.latency_ms(self.complete(kept))

    def usage(self, keep: np.ndarray) -> float:
        return self.base.usage(keep & ~self._gone)

    def floor_plan(self, scores: Mapping[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
        return self.complete(self.base.floor_plan(scores))

    def plan_at(self, wanted: Callable, scores: Mapping[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
        return self.complete(self.base.plan_at(wanted, scores))

    def check_reachable(self, scores: Mapping[str, np.ndarray]) -> None:
        """Fail before the channel search when even every group at its floor, with the blocks gone, misses."""
        floor = self.floor_plan(scores)
        if self.meets(floor):
            return
        macs, params = self.fractions(floor)
        latency = ""
        if self.base.budget.needs_latency:
            ms = self.latency_ms(floor)
            latency = f", predicted speed-up {self.base.full_latency_ms / ms:.2f}x"
        raise BudgetError(
            f"the budget ({self.base.budget.describe()}) cannot be reached: with {len(self.removed)} residual "
            f"blocks removed and every group at a floor of {self.base.budget.floor:.0%}, the best reachable is "
            f"MACs {macs:.1%}, params {params:.1%} of the original{latency}; ask for at least that, lower --floor, "
            "or allow more blocks to go (--depth-guard, --depth-stage-keep)"
        )


def widest(selector, model, analysis, depth) -> Any:
    """``selector`` seen with every block removed that depth ``depth`` may take (greedily, in graph order,
    within the stage guard): the widest reach a depth-and-channels plan can have, for reachability checks and
    the goal's search range. ``selector`` itself when depth is off or the model has no removable block."""
    from edgeprune.analysis.blocks import find_blocks
    from edgeprune.surgery.depth import stage_allows

    if depth.mode == "off":
        return selector
    blocks = find_blocks(model, analysis)
    taken: list[ResidualBlock] = []
    for block in blocks.blocks:
        if stage_allows(blocks, [b.id for b in taken], block, depth.stage_keep):
            taken.append(block)
    return DepthSelector(selector, taken) if taken else selector
