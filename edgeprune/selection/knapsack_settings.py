"""Settings of the `knapsack` selection strategy: the ``[selection.knapsack]`` table of `OptimizeSettings`.

Kept apart from the strategy (numpy) so the settings tree stays light to import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgeprune.errors import InputError
from edgeprune.settings_tree import setting

# criteria whose scores are a loss curve the knapsack can read (see `edgeprune.selection.knapsack`)
LOSS_CRITERIA = ("refit-error",)


@dataclass(frozen=True)
class KnapsackSettings:
    """``passes``: re-pricings of every group's counts around the last solution (costs are not separable;
    the passes stop early when a solution repeats). ``resolution``: bins the budget is cut into for the
    exact dynamic programme (costs rounded up, so every answer fits; the greedy last step spends the rest).
    """

    SECTION: ClassVar[str] = "Strategy"

    passes: int = setting(
        8, cli=False, help="knapsack: re-pricings of every group's counts around the last solution (at most)."
    )
    resolution: int = setting(
        2000, cli=False, help="knapsack: bins the budget is cut into for the exact dynamic programme."
    )
    probes: int = setting(
        32, cli=False, help="knapsack: counts of each group priced exactly in a pass (linear in between)."
    )

    def __post_init__(self) -> None:
        if isinstance(self.passes, bool) or not 1 <= self.passes <= 100:
            raise InputError(f"knapsack passes must be a whole number from 1 to 100, got {self.passes!r}")
        if isinstance(self.probes, bool) or not 2 <= self.probes <= 100_000:
            raise InputError(f"knapsack probes must be a whole number from 2 to 100000, got {self.probes!r}")
        if isinstance(self.resolution, bool) or not 10 <= self.resolution <= 1_000_000:
            raise InputError(
                f"knapsack resolution must be a whole number of bins from 10 to 1000000, got {self.resolution!r}"
            )
