"""The state the op rules read and write while the analysis walks a graph in topological order.

Rules follow one discipline: check everything first and raise `Unsupported`, then act. The engine turns
an `Unsupported` into frozen groups, so an op used in a way its rule does not understand never prunes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeprune.analysis.groups import FrozenReason, SliceSpec
from edgeprune.analysis.unionfind import UnionFind
from edgeprune.ops.common import Unsupported  # noqa: F401  (rules raise it; the engine catches it)


@dataclass
class Space:
    """A run of fresh channel ids created by one node output (a conv's output channels, a graph input)."""

    name: str
    node: str | None
    ids: np.ndarray


@dataclass
class Track:
    axis: int
    ids: np.ndarray


class AnalysisContext:
    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.uf = UnionFind()
        self.tracks: dict[str, Track] = {}
        self.spaces: list[Space] = []
        self.space_of_id: list[int] = []
        self.frozen: list[tuple[np.ndarray, FrozenReason]] = []
        self.divisions: list[tuple[str, np.ndarray, int]] = []
        self.slices: list[SliceSpec] = []
        self.reducing: list[tuple[str, str]] = []

    # -- reading -------------------------------------------------------------------------------
    def track(self, tensor) -> Track | None:
        return self.tracks.get(tensor.name) if tensor is not None and tensor.name else None

    @staticmethod
    def constant(tensor) -> np.ndarray | None:
        import onnx_graphsurgeon as gs

        return np.asarray(tensor.values) if isinstance(tensor, gs.Constant) else None

    @staticmethod
    def shape(tensor) -> tuple | None:
        shape = getattr(tensor, "shape", None)
        return tuple(shape) if shape is not None else None

    # -- acting ----------------------------------------------------------------------------------
    def set_track(self, tensor, axis: int, ids: np.ndarray) -> None:
        self.tracks[tensor.name] = Track(axis, np.asarray(ids, dtype=np.int64))

    def fresh_ids(self, name: str, node_name: str | None, size: int) -> np.ndarray:
        """Ids for channels that appear here for the first time (a node output, a constant operand)."""
        ids = self.uf.allocate(size)
        self.space_of_id.extend([len(self.spaces)] * size)
        self.spaces.append(Space(name, node_name, ids))
        return ids

    def new_space(self, node_name: str | None, tensor, axis: int, size: int) -> np.ndarray:
        ids = self.fresh_ids(tensor.name, node_name, size)
        self.set_track(tensor, axis, ids)
        return ids

    def couple(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(a.tolist(), b.tolist()):
            self.uf.union(x, y)

    def freeze(self, ids: np.ndarray, node, reason: str) -> None:
        if len(ids):
            self.frozen.append((ids, FrozenReason(node.name, node.op, reason)))

    def reduce(self, node, tensor) -> None:
        """``node`` sums over the channels of ``tensor``: masking them there equals removing them."""
        self.reducing.append((node.name, tensor.name))

    def require_divisions(self, node, ids: np.ndarray, divisions: int) -> None:
        if divisions > 1:
            self.divisions.append((node.name, ids, divisions))

    def slice_with(self, node, input_index: int, axis: int, tensor) -> None:
        self.slices.append(SliceSpec(node.name, input_index, axis, tensor.name))
