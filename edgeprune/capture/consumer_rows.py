"""Where `capture_grams` gets its consumers' regression rows, and which consumers' inputs no plan changes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.capture.rows import linear_rows, patches
from edgeprune.capture.session import ActivationRunner
from edgeprune.errors import InputError
from edgeprune.graph.model import ModelGraph

if TYPE_CHECKING:
    from edgeprune.capture.grams import LinearConsumer


def unchanging(model: ModelGraph, analysis: ChannelAnalysis, tensors: set[str]) -> set[str]:
    """Those of ``tensors`` that no plan can change: no layer before them reads a prunable group's channels
    (on the kept channels, their values are the original model's whatever is pruned)."""
    prunable = {i for i, g in enumerate(analysis.groups) if g.prunable}
    cutting = {
        node
        for node, tensor in analysis.reducing_edges
        if tensor in analysis.tensors
        and prunable & set(analysis.class_group[analysis.tensors[tensor].classes].tolist())
    }
    moving: set[str] = set()
    for node in model.proto.graph.node:  # topological order
        if node.name in cutting or any(name in moving for name in node.input):
            moving.update(node.output)
    return {t for t in tensors if t not in moving}


class ConsumerRows:
    """Every consumer's regression rows per batch, cut in numpy from the maps one session returns: im2col
    patches at the sampled sites, a channels-last map's vectors there, or a Gemm's whole input rows.
    Consumers whose rows are the same (one input, window and sites: a CSP block's two 1x1 convs) have one
    ``owner``, whose sums the others share."""

    def __init__(
        self, model: ModelGraph, consumers, sizes: dict, positions: dict, provider: str, also: Sequence[str] = ()
    ) -> None:
        """``also``: more tensors for the session to return with the consumers' inputs."""
        self.sizes, self.positions = sizes, positions
        self.runner = ActivationRunner(model, [c.input for c in consumers] + list(also), provider)
        self.owner: dict[int, LinearConsumer] = {}
        first_of: dict[tuple, LinearConsumer] = {}
        for c in consumers:
            key = (c.input, c.geometry, c.sites, sizes.get(c.node), c.inputs.start, c.inputs.stop)
            self.owner[id(c)] = first_of.setdefault(key, c)

    def run(self, inputs, first: int, count: int) -> dict:
        values = self.runner.run(inputs)
        for name, value in values.items():  # each tensor once, however many consumers read it
            if not np.isfinite(value).all():
                raise InputError(
                    f"activation {name} has NaN or Inf values on the calibration data; check its preprocessing"
                )
        values["_batch"] = np.array([first, count])
        return values

    def batch(self, values: dict):
        """``rows_of(consumer)``: its rows in the batch of ``values``, cut once per set of rows (its owner's)."""
        cut: dict[int, np.ndarray] = {}

        def rows_of(c: LinearConsumer) -> np.ndarray:
            owner = self.owner[id(c)]
            if id(owner) not in cut:
                cut[id(owner)] = self.of(owner, values)
            return cut[id(owner)]

        return rows_of

    def of(self, c: LinearConsumer, values: dict) -> np.ndarray:
        first, count = (int(v) for v in values["_batch"])
        if c.geometry is None and not c.sites:
            return values[c.input].reshape(count, -1)
        at = self.positions[self.sizes[c.node]]
        at = at[(at[:, 0] >= first) & (at[:, 0] < first + count)]
        if c.sites or c.geometry is None:
            return linear_rows(values[c.input], first, at)
        return patches(values[c.input][:, c.inputs], first, at, c.geometry)
