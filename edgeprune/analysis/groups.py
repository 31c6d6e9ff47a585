"""The result of channel analysis: coupled channel groups and where each tensor's channels come from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np


@dataclass(frozen=True)
class FrozenReason:
    """Why a group may not be pruned: the node that stops it, its op, and the reason in words."""

    node: str
    op: str
    reason: str

    def __str__(self) -> str:
        return f"{self.node} ({self.op}): {self.reason}"


@dataclass(frozen=True)
class ChannelGroup:
    """A set of channel dimensions that must lose the same channels together.

    ``channels`` counts the group's channels; a plan names the kept ones by index ``0..channels-1``.
    ``multiple``: the kept count must be a multiple of it, with an equal count in each of ``multiple``
    consecutive segments (grouped convolutions read their inputs in equal slices).
    ``producers`` are the nodes whose output channels are the group's (convs, gemms); ``consumers`` are the
    nodes that sum over the group's channels (the points where a pruned channel stops mattering).
    """

    id: str
    channels: int
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    tensors: tuple[str, ...]
    multiple: int = 1
    frozen: tuple[FrozenReason, ...] = ()

    @property
    def prunable(self) -> bool:
        return not self.frozen


@dataclass(frozen=True)
class TensorChannels:
    """Where the positions along a tensor's channel axis come from.

    ``classes[p]`` is the global channel class at position ``p`` (a flattened tensor repeats each class
    once per spatial position). Pruning keeps, in order, exactly the positions whose class is kept.
    """

    axis: int
    classes: np.ndarray


@dataclass(frozen=True)
class SliceSpec:
    """Axis ``axis`` of constant input ``input_index`` of ``node`` follows the channels of ``tensor``."""

    node: str
    input_index: int
    axis: int
    tensor: str


@dataclass(frozen=True)
class ChannelAnalysis:
    """Everything surgery, masking and the cost model need to know about a model's channels.

    Global channel classes are numbered ``0..n_classes-1``; ``class_group[c]`` and ``class_index[c]``
    give the group (index into ``groups``) and the channel index inside that group.
    """

    groups: tuple[ChannelGroup, ...]
    tensors: Mapping[str, TensorChannels]
    class_group: np.ndarray
    class_index: np.ndarray
    slices: tuple[SliceSpec, ...]
    reducing_edges: tuple[tuple[str, str], ...]
    model_sha256: str = ""
    _by_id: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    _members: tuple[np.ndarray, ...] = field(default=(), repr=False)

    def members(self, group_id: str) -> np.ndarray:
        """The global class ids of a group, in the group's channel order."""
        return self._members[self._by_id[group_id]]

    def group(self, group_id: str) -> ChannelGroup:
        return self.groups[self._by_id[group_id]]

    def group_index(self, group_id: str) -> int:
        return self._by_id[group_id]

    @property
    def prunable_groups(self) -> tuple[ChannelGroup, ...]:
        return tuple(g for g in self.groups if g.prunable)

    def keep_mask(self, kept: Mapping[str, np.ndarray | tuple[int, ...]]) -> np.ndarray:
        """One bool per global class: False for the channels a plan removes."""
        keep = np.ones(len(self.class_group), dtype=bool)
        for group_id, indices in kept.items():
            members = self.members(group_id)
            keep[members] = False
            keep[members[np.asarray(indices, dtype=np.int64)]] = True
        return keep

    def kept_positions(self, tensor: str, keep: np.ndarray) -> np.ndarray | None:
        """Bool per channel position of ``tensor`` (None when the tensor carries no tracked channels)."""
        channels = self.tensors.get(tensor)
        return None if channels is None else keep[channels.classes]
