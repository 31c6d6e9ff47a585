"""Settings of the `semiotic` selection strategy: the ``[selection.semiotic]`` table of `OptimizeSettings`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgeprune.errors import InputError
from edgeprune.settings_tree import setting


@dataclass(frozen=True)
class SemioticSettings:
    """``images``: the fixed calibration subset every candidate plan is measured on (drawn with the run's seed).
    ``chunk``: the share of a group's channels one greedy step removes (at least the group's alignment step).
    ``per_mac``: rank candidates by curve change per MAC removed instead of by curve change alone.
    ``levels``: grey levels of the entropy (None: 8, fewer for maps of 4x4 or less).
    ``lazy``: re-measure only the most promising candidates each step (a heuristic, see the strategy; about
    5x faster on the ResNet-20 reference model, not always the same plan); False measures every one.
    ``distance``: how far a candidate's curve is from the original's (`curve_distance`): ``steps`` compares
    H_0 and every Delta H_l, ``levels`` every H_l.
    """

    SECTION: ClassVar[str] = "Strategy"

    images: int = setting(
        64,
        flag="--semiotic-images",
        help="semiotic: calibration images every candidate's superization curve is measured on.",
    )
    chunk: float = setting(
        0.125,
        flag="--semiotic-chunk",
        help="semiotic: share of a group's channels one greedy step removes (at least the alignment).",
    )
    per_mac: bool = setting(
        False,
        flag="--semiotic-per-mac",
        help="semiotic: rank candidates by curve change per MAC removed, not by curve change alone.",
    )
    levels: int | None = None
    distance: str = "steps"
    lazy: bool = setting(
        False,
        flag="--semiotic-lazy/--semiotic-exact",
        help="semiotic: re-measure only the most promising candidates each step (a heuristic, about "
        "5x faster), or every candidate at every step.",
    )

    def __post_init__(self) -> None:
        if self.images < 1:
            raise InputError(f"--semiotic-images must be at least 1, got {self.images}")
        if not 0.0 < self.chunk <= 1.0:
            raise InputError(f"the semiotic chunk must be a fraction in (0, 1], got {self.chunk}")
        if self.distance not in ("steps", "levels"):
            raise InputError(f"the semiotic distance must be steps or levels, got '{self.distance}'")
        if self.levels is not None and not 2 <= self.levels <= 256:
            raise InputError(f"the semiotic levels must be between 2 and 256, got {self.levels}")
