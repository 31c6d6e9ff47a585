"""Passes over the calibration data that compute each node of a graph once, across many passes.

Reconstruction refits layers level by level: the rows of a layer are read in the network whose earlier
layers are already refitted, so each level needs a pass of the pruned network up to that level's inputs.
Running the whole network for every level costs one full pass per level; here a pass computes only the
nodes that no earlier pass computed (their weights are final: every layer they depend on was refitted at
an earlier level), starting from the tensors the earlier passes left (``stored``, spooled per image), and
keeps what later passes will read. The levels together then cost about one pass of the pruned network.

A pass is a sub-graph of the current graph (onnx-graphsurgeon: the stored tensors become its inputs, the
tensors wanted and the ones later nodes read its outputs) run by ONNX Runtime batch by batch.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from edgeprune.capture.session import ActivationRunner
from edgeprune.capture.spool import Spool, SpoolBudget
from edgeprune.graph.load import export_clean
from edgeprune.graph.model import ModelGraph

logger = logging.getLogger(__name__)


class SegmentedRun:
    """``values(names)`` streams per batch the values of ``names`` in ``graph`` as it stands now.

    ``graph`` (an onnx-graphsurgeon graph, topologically sorted) may be changed between calls, but only in
    nodes no call has computed yet or that the caller named ``pending`` (a refit changes a layer after a pass
    ran it as it stood: a residual shortcut read before the other branch's refit). A pending node, and all
    that a pass computes from it, is computed again when a later pass needs it."""

    def __init__(
        self,
        graph,
        calibration,
        *,
        batch_size: int,
        provider: str,
        budget: SpoolBudget,
        shapes=None,
        keep: bool = True,
    ) -> None:
        self.graph, self.calibration = graph, calibration
        self.batch_size, self.provider, self.budget = batch_size, provider, budget
        self.shapes = shapes or {}
        self.keep = keep  # False: a single pass, nothing is kept for later ones
        self.done: set[int] = set()
        self.stored: dict[str, Spool] = {}
        self.producer: dict[str, int] = {}
        self.readers: dict[str, set[int]] = {}
        for index, node in enumerate(graph.nodes):
            for tensor in node.outputs:
                self.producer[tensor.name] = index
            for tensor in node.inputs:
                self.readers.setdefault(tensor.name, set()).add(index)
        self.sessions = 0

    def values(
        self, names: Sequence[str], pending: Collection[str] = ()
    ) -> Iterator[tuple[Any, dict[str, np.ndarray]]]:
        """(batch, {name: values}) for every calibration batch, computing only what no earlier call did
        (nodes named in ``pending`` will change: nothing computed from them is kept)."""
        names = list(dict.fromkeys(names))
        nodes = self._nodes_for(names)
        inputs = self._inputs(nodes, names)
        final = self._final(nodes, set(pending))
        produced = {t.name for i in final for t in self.graph.nodes[i].outputs}
        later = self._read_later(final, produced) if self.keep else []
        made = {t.name for i in nodes for t in self.graph.nodes[i].outputs}
        outputs = [n for n in names if n in made] + [t for t in later if t not in names]
        runner = self._runner(nodes, inputs, outputs) if nodes else None
        readers = {name: self.stored[name].reader() for name in inputs if name in self.stored}
        spools: dict[str, Spool] = {}
        for batch in self.calibration.batches(self.batch_size):
            count = len(batch.indices)
            feeds = {name: readers[name](count) if name in readers else batch.inputs[name] for name in inputs}
            values = runner.run(feeds) if runner is not None else {}
            values.update({name: feeds[name] for name in names if name not in values})  # stored or model inputs
            for name in later:
                if name not in spools:
                    spools[name] = Spool(
                        values[name].shape[1:], values[name].dtype, self.calibration.count, self.budget
                    )
                spools[name].append(values[name])
            yield batch, values
        self.done.update(final)
        self.stored.update(spools)
        self._forget()

    def close(self) -> None:
        for spool in self.stored.values():
            spool.close()
        self.stored.clear()

    def _nodes_for(self, names: Iterable[str]) -> list[int]:
        """The nodes not yet computed that ``names`` depend on, in graph (topological) order."""
        found: set[int] = set()
        stack = [n for n in names if n not in self.stored]
        while stack:
            name = stack.pop()
            index = self.producer.get(name)
            if index is None or index in found or name in self.stored:
                continue
            if index in self.done:
                raise RuntimeError(f"tensor {name} was computed by an earlier pass but not kept")
            found.add(index)
            stack.extend(t.name for t in self.graph.nodes[index].inputs if not _constant(t))
        return sorted(found)

    def _final(self, nodes: list[int], pending: set[str]) -> list[int]:
        """The nodes of a pass whose outputs will not change: neither pending nor computed from a pending one."""
        moving: set[str] = set()
        final = []
        for index in nodes:  # in topological order
            node = self.graph.nodes[index]
            if node.name in pending or any(t.name in moving for t in node.inputs):
                moving.update(t.name for t in node.outputs)
            else:
                final.append(index)
        return final

    def _inputs(self, nodes: list[int], names: Sequence[str]) -> list[str]:
        """What the pass reads: stored tensors and model inputs its nodes (or ``names`` directly) read."""
        produced = {t.name for i in nodes for t in self.graph.nodes[i].outputs}
        wanted = [t.name for i in nodes for t in self.graph.nodes[i].inputs if not _constant(t)]
        wanted += [n for n in names if n not in produced]
        return [n for n in dict.fromkeys(wanted) if n not in produced and n]

    def _read_later(self, nodes: list[int], produced: set[str]) -> list[str]:
        """Tensors this pass makes that a node no pass has computed yet still reads."""
        finished = self.done | set(nodes)
        return [name for name in sorted(produced) if self.readers.get(name, set()) - finished]

    def _forget(self) -> None:
        """Close the stored tensors that every reader has now consumed."""
        for name in [n for n in self.stored if not self.readers.get(n, set()) - self.done]:
            self.stored.pop(name).close()

    def _runner(self, nodes: list[int], inputs: list[str], outputs: list[str]) -> ActivationRunner:
        copy = self.graph.copy()
        tensors = copy.tensors()
        for name in inputs:
            tensor = tensors[name]
            tensor.inputs.clear()  # a stored tensor is fed, not computed: its producer drops out
            if tensor.dtype is None:
                tensor.dtype = np.float32
            if tensor.shape is None and name in self.shapes:
                tensor.shape = _batch_free(self.shapes[name])
        copy.inputs = [tensors[name] for name in inputs]
        copy.outputs = [tensors[name] for name in outputs]
        for name in outputs:
            if tensors[name].dtype is None:
                tensors[name].dtype = np.float32
        proto = export_clean(copy)
        self.sessions += 1
        return ActivationRunner(ModelGraph(proto, {}, {}), outputs, self.provider)


def _constant(tensor) -> bool:
    import onnx_graphsurgeon as gs

    return isinstance(tensor, gs.Constant) or not tensor.name


def _batch_free(shape) -> list:
    """The shape with its batch axis left open (a pass feeds batches of any size)."""
    return ["batch", *list(shape)[1:]] if shape else shape
