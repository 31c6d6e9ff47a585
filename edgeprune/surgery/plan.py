"""`PruningPlan`: which channels each group keeps, tied to the model it was made for; replayable JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis, ChannelGroup
from edgeprune.errors import InputError
from edgeprune.graph.io import write_text_atomic

PLAN_FORMAT = 1


@dataclass(frozen=True)
class PruningPlan:
    """Per group id, the sorted channel indices to keep. Groups not named keep every channel.

    ``removed_blocks``: residual blocks removed whole (the ids of their Adds, `edgeprune.analysis.blocks`);
    a plan may hold both. A block is also removed when the plan keeps no channel of any group inside it,
    which is how strategies hand depth to the stages that price plans by their kept channels alone; entries
    for groups inside a removed block say nothing else (surgery/depth.py).
    """

    model_sha256: str
    kept: Mapping[str, tuple[int, ...]]
    strategy: str = "manual"
    criterion: str = ""
    seed: int | None = None
    device: str = ""
    settings: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    removed_blocks: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        data: dict[str, object] = {
            "format": PLAN_FORMAT,
            "model_sha256": self.model_sha256,
            "strategy": self.strategy,
            "criterion": self.criterion,
            "seed": self.seed,
            "device": self.device,
            "settings": dict(self.settings),
        }
        if self.removed_blocks:  # written only when there are some: a channel plan's JSON is as it was
            data["removed_blocks"] = list(self.removed_blocks)
        data["kept"] = {group: list(indices) for group, indices in self.kept.items()}
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    def save(self, path: str | os.PathLike) -> Path:
        return write_text_atomic(path, self.to_json())

    @classmethod
    def from_dict(cls, data: dict) -> PruningPlan:
        if not isinstance(data, dict) or "kept" not in data or "model_sha256" not in data:
            raise InputError("the plan has no 'kept' or 'model_sha256' entry; make one with `edgeprune plan`")
        if data.get("format", PLAN_FORMAT) != PLAN_FORMAT:
            raise InputError(f"plan format {data.get('format')} is not supported (expected {PLAN_FORMAT})")
        kept = data["kept"]
        if not isinstance(kept, dict) or not all(isinstance(v, list) for v in kept.values()):
            raise InputError("the plan's 'kept' must map each group id to a list of channel indices")
        for group_id, indices in kept.items():
            if not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
                raise InputError(f"the plan's channel indices must be integers (group '{group_id}' has {indices!r})")
        kept_tuples = {str(k): tuple(v) for k, v in kept.items()}
        removed = data.get("removed_blocks", [])
        if not isinstance(removed, list) or not all(isinstance(b, str) for b in removed):
            raise InputError("the plan's 'removed_blocks' must be a list of block ids (see `edgeprune inspect`)")
        return cls(
            model_sha256=str(data["model_sha256"]),
            kept=MappingProxyType(kept_tuples),
            strategy=str(data.get("strategy", "manual")),
            criterion=str(data.get("criterion", "")),
            seed=data.get("seed"),
            device=str(data.get("device", "")),
            settings=MappingProxyType(dict(data.get("settings", {}))),
            removed_blocks=tuple(dict.fromkeys(removed)),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> PruningPlan:
        source = Path(path)
        if not source.is_file():
            raise InputError(f"plan file not found: {source}; make one with `edgeprune plan`")
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{source} is not a JSON plan ({exc}); make one with `edgeprune plan`") from exc
        return cls.from_dict(data)


def validate_plan(plan: PruningPlan, analysis: ChannelAnalysis, inside_removed: Collection[str] | None = None) -> None:
    """Raise InputError naming the first thing in ``plan`` that cannot apply to this model.

    ``inside_removed``: the groups inside the blocks the plan removes (`surgery.depth.resolve_blocks` finds
    them from the model); their entries are not checked. None: the caller has no model to find blocks in,
    so a plan that removes any is refused."""
    if analysis.model_sha256 and plan.model_sha256 != analysis.model_sha256:
        raise InputError(
            f"the plan was made for another model (sha256 {plan.model_sha256[:12]}..., this model is "
            f"{analysis.model_sha256[:12]}...); make a new plan for this model with `edgeprune plan`"
        )
    if inside_removed is None and plan.removed_blocks:
        raise InputError(
            "the plan removes residual blocks, which this step cannot check against the model; "
            "apply it with `edgeprune prune` instead"
        )
    skipped = set(inside_removed or ())
    for group_id, indices in plan.kept.items():
        if group_id in skipped:
            continue
        try:
            group = analysis.group(group_id)
        except KeyError:
            raise InputError(
                f"the plan names group '{group_id}', which this model does not have; "
                "list the groups with `edgeprune inspect`"
            ) from None
        _validate_group(group, indices)


def _validate_group(group: ChannelGroup, indices: tuple[int, ...]) -> None:
    where = f"plan entry for group '{group.id}'"
    if group.frozen and len(indices) != group.channels:
        raise InputError(f"{where}: the group is frozen ({group.frozen[0]}); leave it out of the plan")
    if not indices:
        raise InputError(
            f"{where} keeps no channel; a group must keep at least {group.multiple} (only the groups inside a "
            "removable residual block may be emptied, all of them: that removes the block)"
        )
    array = np.asarray(indices)
    if array.min() < 0 or array.max() >= group.channels:
        raise InputError(f"{where}: channel index out of range 0..{group.channels - 1}")
    if len(np.unique(array)) != len(array):
        raise InputError(f"{where}: duplicate channel indices")
    if group.multiple > 1:
        counts = np.bincount(array * group.multiple // group.channels, minlength=group.multiple)
        if len(set(counts.tolist())) != 1:
            raise InputError(
                f"{where}: a grouped conv needs the same number of kept channels in each of its "
                f"{group.multiple} groups (got {counts.tolist()})"
            )


def simple_plan(analysis: ChannelAnalysis, ratio: float, *, random: bool = False, seed: int = 0) -> PruningPlan:
    """Keep ``ratio`` of every prunable group: the first channels, or random ones with ``seed``.

    The ratio holds in every piece of a group that a Split, a Slice or a grouped conv reads alone (at least
    one channel each, the same count in every grouped-conv slice), so the plan never empties a tensor and
    `prune` accepts it on every model the analysis accepts."""
    if not 0.0 < ratio <= 1.0:
        raise InputError(f"--ratio must be in (0, 1] (the fraction of channels kept), got {ratio}")
    rng = np.random.default_rng(seed)
    kept = {
        group.id: _keep_ratio(analysis, group, ratio, rng if random else None) for group in analysis.prunable_groups
    }
    return PruningPlan(
        model_sha256=analysis.model_sha256,
        kept=MappingProxyType(kept),
        strategy="random" if random else "first",
        seed=seed if random else None,
        settings=MappingProxyType({"ratio": ratio}),
    )


def _keep_ratio(
    analysis: ChannelAnalysis, group: ChannelGroup, ratio: float, rng: np.random.Generator | None
) -> tuple[int, ...]:
    """``ratio`` of each grouped-conv slice, dealt to its pieces in proportion (the first or random ones)."""
    from edgeprune.analysis.segments import group_pieces, share_of_pieces

    per_slice = group.channels // group.multiple
    slices: list[list[np.ndarray]] = [[] for _ in range(group.multiple)]
    for piece in group_pieces(analysis, group):
        slices[int(piece[0]) // per_slice].append(piece)
    count = min(per_slice, max(1, int(round(ratio * per_slice)), max(len(s) for s in slices)))
    chosen: list[int] = []
    for pieces in slices:
        for piece, share in zip(pieces, share_of_pieces([len(p) for p in pieces], count)):
            picked = rng.choice(piece, size=share, replace=False) if rng is not None else piece[:share]
            chosen.extend(sorted(int(i) for i in picked))
    return tuple(sorted(chosen))
