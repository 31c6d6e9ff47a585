"""The rows of the tensors reconstruction fits to, collected during the capture pass, most of them computed
from the consumers' rows rather than asked of ONNX Runtime.

A layer's output at the sampled sites is its rows times its weights plus its bias: a conv's im2col patches
there, a Gemm's input rows, a channels-last MatMul's input vectors, which the capture pass cuts anyway for
the Gram sums. A residual sum is such an output plus its shortcut (the block's input, which another layer
reads, or a projection conv's output); a MatMul's bias Add adds a constant. Computing these in numpy costs
one product per layer; asking the session for them instead keeps every full-resolution map of the batch
alive (on ResNet-18 at 224x224, 1.4 GB more at the peak) and stops it fusing each conv with its activation.
What does not follow (a grouped conv, a Gemm with alpha or beta, a layer none of whose rows are cut) is asked
for as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from edgeprune.capture.references import SiteRows, in_batch, rows_at, site_positions
from edgeprune.capture.spool import Spool, SpoolBudget

# bytes of kept rows held in memory (the rest in temporary files): a quarter of reconstruction's own budget,
# since these rows are only read, in order, once per reconstruction (ResNet-18 at 512 images: about 120 MB)
MEMORY_BYTES = 128 * 2**20


@dataclass(frozen=True)
class Fetched:
    """A tensor the session returns, cut at the sites."""

    name: str


@dataclass(frozen=True)
class Linear:
    """A layer's output: its rows (those of ``consumer``) times ``weight`` (columns, outputs), plus ``bias``."""

    consumer: object
    weight: np.ndarray
    bias: np.ndarray | None


@dataclass(frozen=True)
class Summed:
    """An Add of recipes, or of a recipe and a per-channel constant (an ndarray of the channels)."""

    parts: tuple


def recipes(model, tensors, consumers, fetched: set[str], positions: Mapping, consumer_positions) -> dict:
    """{tensor: its recipe} for every one of ``tensors`` (`SiteTensor`); a tensor that does not follow from
    the rows is `Fetched`. ``fetched``: what the session returns anyway; ``positions[name]``: a tensor's
    sites; ``consumer_positions(c)``: the sites of a consumer's rows (None: one row per image)."""
    graph = model.proto.graph
    producers = {output: node for node in graph.node for output in node.output}
    constants = {t.name: t for t in graph.initializer}
    by_node: dict[str, list] = {}
    for consumer in consumers:
        by_node.setdefault(consumer.node, []).append(consumer)
    found = {}
    for tensor in tensors:
        sites = positions[tensor.name]

        def derive(name: str, depth: int = 0, sites=sites, layout=tensor.layout):
            if name in fetched:
                return Fetched(name)
            node = producers.get(name)
            if node is None or depth > 4:
                return None
            if node.op_type in ("Conv", "Gemm", "MatMul"):
                return _linear(node, name, by_node.get(node.name, []), constants, sites, consumer_positions)
            if node.op_type != "Add" or len(node.input) != 2:
                return None
            parts = []
            for operand in node.input:
                if operand in constants:
                    part = _channel_constant(numpy_helper.to_array(constants[operand]), layout)
                else:
                    part = derive(operand, depth + 1)
                if part is None:
                    return None
                parts.append(part)
            if all(isinstance(p, np.ndarray) for p in parts):
                return None
            return Summed(tuple(parts))

        found[tensor.name] = derive(tensor.name) or Fetched(tensor.name)
    return found


def evaluate(recipe, values: dict, rows_of: Callable, layout: str, first: int, at: np.ndarray | None) -> np.ndarray:
    """A recipe's (rows, channels) for one batch: ``values`` the session's tensors, ``rows_of(consumer)``
    the consumer's rows of this batch, ``at`` the batch's sites."""
    if isinstance(recipe, np.ndarray):
        return recipe
    if isinstance(recipe, Fetched):
        return rows_at(values[recipe.name], layout, first, at)
    if isinstance(recipe, Linear):
        out = np.dot(rows_of(recipe.consumer), recipe.weight)
        return out if recipe.bias is None else out + recipe.bias
    total = evaluate(recipe.parts[0], values, rows_of, layout, first, at)
    for part in recipe.parts[1:]:
        total = total + evaluate(part, values, rows_of, layout, first, at)
    return np.asarray(total, dtype=np.float32)


def _linear(node, name: str, consumers: list, constants: dict, sites, consumer_positions) -> Linear | None:
    """A Conv (one group), Gemm (alpha = beta = 1) or MatMul whose rows are cut at these very sites."""
    if len(consumers) != 1:  # none measured, or a grouped conv (a consumer per group)
        return None
    consumer = consumers[0]
    if consumer.output != name or (consumer.geometry is not None and consumer.geometry.groups != 1):
        return None
    mine = consumer_positions(consumer)
    if (mine is None) != (sites is None) or (mine is not None and not np.array_equal(mine, sites)):
        return None
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Gemm" and (attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0):
        return None
    bias = None
    if node.op_type in ("Conv", "Gemm") and len(node.input) > 2 and node.input[2]:
        if node.input[2] not in constants:
            return None
        bias = numpy_helper.to_array(constants[node.input[2]]).astype(np.float32).reshape(-1)
        if len(bias) != len(consumer.weight):
            return None
    weight = np.ascontiguousarray(consumer.weight.T, dtype=np.float32)
    return Linear(consumer, weight, bias)


def _channel_constant(values: np.ndarray, layout: str) -> np.ndarray | None:
    """A constant added per channel, as a (channels,) vector; None for any other shape."""
    dims = values.shape
    if layout == "map" and len(dims) not in (3, 4):  # (C,) or (1, C) would broadcast along the width
        return None
    channel_axis = len(dims) - 3 if layout == "map" else len(dims) - 1
    if not dims or any(d != 1 for i, d in enumerate(dims) if i != channel_axis):
        return None
    return values.reshape(-1).astype(np.float32)


class ReferenceRows:
    """Collects ``tensors``' rows batch by batch (`add`), each in its own spool; `rows` hands them out.

    ``consumers`` and ``consumer_positions`` (the sites of a consumer's rows) say which follow from the
    consumers' rows; ``fetched``: the tensors the session returns anyway. `names`: what else it must return."""

    def __init__(
        self,
        model,
        tensors,
        images: int,
        per_image: int,
        seed: int,
        consumers=(),
        consumer_positions=lambda consumer: None,
        fetched: frozenset[str] = frozenset(),
        memory: int = MEMORY_BYTES,
    ) -> None:
        self.tensors, self.images = tuple(tensors), images
        self.positions = {
            t.name: site_positions(model.shapes[t.name], t.layout, images, per_image, seed) for t in self.tensors
        }
        self.fetched = frozenset(fetched)
        self.recipes = recipes(model, self.tensors, consumers, set(fetched), self.positions, consumer_positions)
        self.spools: dict[str, Spool] = {}
        self.budget = SpoolBudget(memory)

    @property
    def names(self) -> list[str]:
        """The tensors the session must return for these rows, beyond the ones it returns anyway."""
        found: list[str] = []
        for recipe in self.recipes.values():
            found += _fetched(recipe)
        return [name for name in dict.fromkeys(found) if name not in self.fetched]

    def add(self, values: dict, rows_of: Callable, first: int, count: int) -> None:
        """One batch: ``values`` the session's tensors, ``rows_of(consumer)`` that consumer's rows."""
        for tensor in self.tensors:
            positions = self.positions[tensor.name]
            at = None if positions is None else in_batch(positions, first, count)
            rows = evaluate(self.recipes[tensor.name], values, rows_of, tensor.layout, first, at)
            if tensor.name not in self.spools:
                per_image = 1 if positions is None else len(positions) // max(self.images, 1)
                self.spools[tensor.name] = Spool(rows.shape[1:], np.float32, per_image * self.images, self.budget)
            self.spools[tensor.name].append(rows)

    def rows(self) -> dict[str, SiteRows]:
        return {name: SiteRows(self.positions[name], spool) for name, spool in self.spools.items()}


def _fetched(recipe) -> list[str]:
    if isinstance(recipe, Fetched):
        return [recipe.name]
    if isinstance(recipe, Summed):
        return [name for part in recipe.parts for name in _fetched(part)]
    return []
