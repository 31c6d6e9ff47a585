"""Settings of the `semiotic` selection strategy: the ``[selection.semiotic]`` table of `OptimizeSettings`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from edgeprune.errors import InputError
from edgeprune.search.settings import JUDGES
from edgeprune.settings_tree import setting

DEPTH_MODES = ("off", "on", "only")


@dataclass(frozen=True)
class DepthSettings:
    """Depth pruning (docs/results-depth.md), from the ``[selection]`` table's ``depth`` keys.

    ``mode``: ``off`` (channels only), ``on`` (remove blocks first, then channels if the budget needs more),
    ``only`` (blocks, no channels). ``guard``: a block goes only if the held-out measure of a part of the
    calibration data (accuracy with labels, top-1 agreement without), after reconstruction, drops by at
    most this many points. ``stage_keep``: every stage keeps at least this many of its residual blocks.
    """

    mode: str = "off"
    guard: float = 1.0
    stage_keep: int = 1

    def __post_init__(self) -> None:
        if self.mode not in DEPTH_MODES:
            raise InputError(f"depth must be one of {', '.join(DEPTH_MODES)}, got '{self.mode}'")
        if not self.guard >= 0.0:
            raise InputError(f"depth-guard is the points one removal may cost: zero or positive, got {self.guard}")
        if self.stage_keep < 0:
            raise InputError(f"depth-stage-keep must be zero or a positive count of blocks, got {self.stage_keep}")


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
    ``judge``: measure each candidate's curve on the masked network before any reconstruction (``masked``,
    the default), or on the network reconstruction would produce from it (``reconstructed``:
    `SequentialEvaluator`, refitting from ``refit_images`` other calibration images). On the ResNet-20 and
    MobileNetV2 reference models at 2x, 5x and 10x the reconstructed judge was never more accurate after
    reconstruction (equal, or 0.05 to 4.8 points lower) and took 6 to 14 times as long (docs/results-search.md),
    so the masked one is the default.
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
    judge: str = setting(
        "masked",
        flag="--semiotic-judge",
        choices=JUDGES,
        help="semiotic: measure each candidate's curve masked, before reconstruction (masked), or as "
        "reconstruction would leave it (reconstructed: 6-14x slower, no more accurate on the reference models).",
    )
    refit_images: int = setting(
        64,
        cli=False,
        help="semiotic: calibration images, none of them measured, the reconstructed judge refits every plan from.",
    )

    @property
    def depth(self) -> DepthSettings:
        """The run's depth settings: the ``[selection]`` table hands them over (`with_depth`), since a strategy
        receives only its own table."""
        return getattr(self, "_depth", None) or DepthSettings()

    def with_depth(self, depth: DepthSettings) -> SemioticSettings:
        """A copy that carries ``depth`` (not a key of this table: the keys are the ``[selection]`` table's)."""
        copy = replace(self)
        object.__setattr__(copy, "_depth", depth)
        return copy

    def __post_init__(self) -> None:
        if self.images < 1:
            raise InputError(f"--semiotic-images must be at least 1, got {self.images}")
        if self.refit_images < 1:
            raise InputError(f"the semiotic refit-images must be at least 1, got {self.refit_images}")
        if self.judge not in JUDGES:
            raise InputError(f"the semiotic judge is one of {', '.join(JUDGES)}, got '{self.judge}'")
        if not 0.0 < self.chunk <= 1.0:
            raise InputError(f"the semiotic chunk must be a fraction in (0, 1], got {self.chunk}")
        if self.distance not in ("steps", "levels"):
            raise InputError(f"the semiotic distance must be steps or levels, got '{self.distance}'")
        if self.levels is not None and not 2 <= self.levels <= 256:
            raise InputError(f"the semiotic levels must be between 2 and 256, got {self.levels}")
