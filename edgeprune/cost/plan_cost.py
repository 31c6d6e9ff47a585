"""Cost of a plan without doing the surgery: fast enough to score thousands of candidate plans.

Every sliced constant shrinks by the kept fraction of each tensor that one of its axes follows, and a
weighted node's MACs shrink with its weight, so one matrix product (kept positions per tensor) plus a
few vector operations price a plan. Tests check the result against the counts of the real pruned model.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.cost.counts import (
    WEIGHTED_OPS,
    CostSummary,
    NodeCost,
    _is_float,
    _itemsize,
    activation_sizes,
    liveness,
    node_macs,
)
from edgeprune.graph.model import ModelGraph
from edgeprune.graph.shapes import require_concrete


class PlanCostModel:
    """Prices any plan of one model (MACs, params, weight bytes, peak activation memory) without surgery:
    the model's per-node costs are precomputed as functions of the kept fraction of each channel class, so
    a plan costs a few vector operations; the tests check it equals the counts of the truly pruned model."""

    def __init__(self, model: ModelGraph, analysis: ChannelAnalysis) -> None:
        require_concrete(model, "pricing a plan")  # a budget at an unknown size would mean nothing
        self._analysis = analysis
        names = list(analysis.tensors)
        self._tensor_row = {name: row for row, name in enumerate(names)}
        n_classes = len(analysis.class_group)
        self._counts = np.zeros((len(names), n_classes), dtype=np.float64)
        for row, name in enumerate(names):
            self._counts[row] = np.bincount(analysis.tensors[name].classes, minlength=n_classes)
        self._widths = self._counts.sum(axis=1)
        self._build_terms(model, analysis)
        self._build_activations(model)

    def _build_terms(self, model: ModelGraph, analysis: ChannelAnalysis) -> None:
        """One term per use of a float initializer: surgery gives each sliced use its own copy, while
        uses left whole keep sharing the original, so a shared constant is priced per plan."""
        graph = model.proto.graph
        initializers = {t.name: t for t in graph.initializer}
        specs = defaultdict(list)
        for spec in analysis.slices:
            specs[(spec.node, spec.input_index)].append(self._tensor_row[spec.tensor])
        init_ids: dict[str, int] = {}
        self._nodes: list[tuple[str, str]] = []
        macs, params, nbytes, rows, owners = [], [], [], [], []
        for node in graph.node:
            for index, name in enumerate(node.input):
                init = initializers.get(name)
                if init is None or not _is_float(init.data_type):
                    continue
                size = math.prod(init.dims)
                base_macs = 0
                if index == 1 and node.op_type in WEIGHTED_OPS:
                    base_macs = node_macs(
                        node.op_type,
                        tuple(init.dims),
                        model.shapes.get(node.input[0], ()),
                        model.shapes.get(node.output[0], ()),
                    )
                self._nodes.append((node.name, node.op_type))
                macs.append(base_macs)
                params.append(size)
                nbytes.append(size * _itemsize(init.data_type))
                rows.append(specs.get((node.name, index), []))
                owners.append(init_ids.setdefault(name, len(init_ids)))
        self._term_macs = np.array(macs, dtype=np.float64)
        self._term_params = np.array(params, dtype=np.float64)
        self._term_bytes = np.array(nbytes, dtype=np.float64)
        self._term_owner = np.array(owners, dtype=np.int64)
        self._owner_count = len(init_ids)
        self._owner_params = np.zeros(len(init_ids))
        self._owner_bytes = np.zeros(len(init_ids))
        self._owner_params[self._term_owner] = self._term_params
        self._owner_bytes[self._term_owner] = self._term_bytes
        self._first_use = np.unique(self._term_owner, return_index=True)[1]
        width = max((len(r) for r in rows), default=0)
        self._term_rows = np.full((len(rows), max(width, 1)), -1, dtype=np.int64)
        for i, r in enumerate(rows):
            self._term_rows[i, : len(r)] = r

    def _build_activations(self, model: ModelGraph) -> None:
        sizes = activation_sizes(model)
        self._act_names = list(sizes)
        self._act_bytes = np.array([sizes[n] for n in self._act_names], dtype=np.float64)
        self._act_rows = np.array([self._tensor_row.get(n, -1) for n in self._act_names], dtype=np.int64)
        index = {name: i for i, name in enumerate(self._act_names)}
        self._steps = [np.array([index[n] for n in step if n in index], dtype=np.int64) for step in liveness(model)]

    def ratios(self, keep: np.ndarray) -> np.ndarray:
        """Kept fraction of every tracked tensor's channel positions; one extra 1.0 for 'untracked'."""
        kept = self._counts @ keep.astype(np.float64)
        return np.append(np.divide(kept, self._widths, out=np.ones_like(kept), where=self._widths > 0), 1.0)

    def cost(self, keep: np.ndarray, with_nodes: bool = False) -> CostSummary:
        ratios = self.ratios(keep)
        scale = ratios[self._term_rows].prod(axis=1)  # -1 indexes the trailing 1.0
        sliced = scale < 1.0 - 1e-12
        macs = np.rint(self._term_macs * scale)
        whole = np.bincount(self._term_owner, weights=~sliced, minlength=self._owner_count) > 0
        shared_params = np.zeros(len(scale))
        shared_bytes = np.zeros(len(scale))
        shared_params[self._first_use] = self._owner_params * whole
        shared_bytes[self._first_use] = self._owner_bytes * whole
        params = np.rint(np.where(sliced, self._term_params * scale, 0.0)) + shared_params
        nbytes = np.rint(np.where(sliced, self._term_bytes * scale, 0.0)) + shared_bytes
        act = self._act_bytes * ratios[self._act_rows]
        peak = max((float(act[step].sum()) for step in self._steps), default=0.0)
        nodes: tuple[NodeCost, ...] = ()
        if with_nodes:
            merged: dict[tuple[str, str], list[int]] = {}
            for (name, op), m, p, b in zip(self._nodes, macs, params, nbytes):
                totals = merged.setdefault((name, op), [0, 0, 0])
                totals[0] += int(m)
                totals[1] += int(p)
                totals[2] += int(b)
            nodes = tuple(NodeCost(name, op, *totals) for (name, op), totals in merged.items())
        return CostSummary(int(macs.sum()), int(params.sum()), int(nbytes.sum()), int(round(peak)), nodes)

    def cost_of_plan(self, kept) -> CostSummary:
        return self.cost(self._analysis.keep_mask(kept))
