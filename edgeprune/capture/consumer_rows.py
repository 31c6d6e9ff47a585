"""Where `capture_grams` gets its consumers' regression rows, and which consumers' inputs no plan changes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.capture.rows import ConvGeometry, linear_rows, patches
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
    """Every consumer's regression rows per batch: gathered inside the session (`capture.sampled`: only
    the sampled rows leave it), or cut in numpy from whole maps on an opset too old to gather with."""

    def __init__(self, model: ModelGraph, consumers, sizes: dict, positions: dict, provider: str) -> None:
        from edgeprune.capture.sampled import SampledRunner, Sampler, rows_gatherable

        self.sizes, self.positions = sizes, positions
        self.gather = rows_gatherable(model)
        self.samplers: dict[int, Sampler] = {}
        for c in consumers:
            if c.sites:
                self.samplers[id(c)] = Sampler(c.input, sizes[c.node], None, True)
            elif c.geometry is not None:
                g = c.geometry  # the whole map's window: a grouped conv's groups are columns of its rows
                self.samplers[id(c)] = Sampler(
                    c.input, sizes[c.node], ConvGeometry(g.kernel, g.strides, g.pads, g.dilations, 1)
                )
        self.owner: dict[int, LinearConsumer] = {}
        first_of: dict[tuple, LinearConsumer] = {}
        for c in consumers:
            key = (self.samplers.get(id(c)) or c.input, c.inputs.start, c.inputs.stop)
            self.owner[id(c)] = first_of.setdefault(key, c)
        whole = [c.input for c in consumers if id(c) not in self.samplers]
        if self.gather:
            self.runner = SampledRunner(model, list(self.samplers.values()), whole, positions, provider)
        else:
            self.plain = ActivationRunner(model, [c.input for c in consumers], provider)

    def run(self, inputs, first: int, count: int) -> dict:
        if self.gather:
            rows, whole = self.runner.run(inputs, first, count)
            values = {**{("rows", s): v for s, v in rows.items()}, **whole}
        else:
            values = self.plain.run(inputs)
        for name, value in values.items():  # each tensor once, however many consumers read it
            if not np.isfinite(value).all():
                tensor = name[1].tensor if isinstance(name, tuple) else name
                raise InputError(
                    f"activation {tensor} has NaN or Inf values on the calibration data; check its preprocessing"
                )
        values["_batch"] = (first, count)
        return values

    def of(self, c: LinearConsumer, values: dict) -> np.ndarray:
        first, count = values["_batch"]
        sampler = self.samplers.get(id(c))
        if sampler is None:
            return values[c.input].reshape(count, -1)
        if self.gather:
            rows = values[("rows", sampler)]
            if c.geometry is not None and c.geometry.groups > 1:
                taps = sampler.taps
                rows = rows[:, c.inputs.start * taps : c.inputs.stop * taps]
            return rows
        at = self.positions[self.sizes[c.node]]
        at = at[(at[:, 0] >= first) & (at[:, 0] < first + count)]
        if c.sites:
            return linear_rows(values[c.input], first, at)
        assert c.geometry is not None
        return patches(values[c.input][:, c.inputs], first, at, c.geometry)
