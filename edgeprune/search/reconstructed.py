"""Judging a plan as the network reconstruction would produce, with one session and no surgery.

The masked evaluator judges the pruned network *before* reconstruction, which at 5x or 10x is near chance,
so every reward loses its signal (docs/results-search.md). Here the same session also takes the weights of
every layer that reads prunable channels as inputs, beside the channel masks, and an Add of a per-output
bias correction after each of them; a plan is fed its masks and the closed-form ridge refit of the layers
it takes inputs from (`edgeprune.scoring.plan_refit`), computed from the Gram statistics that the
`refit-error` criterion already streams. Layers that lose nothing are fed their own weights.

Other strategies can use it the same way: build a `PlanRefit` from `capture_grams`, then
``ReconstructedEvaluator(model, analysis, refit, batches).evaluate(kept)`` returns the outputs (and any
extra tensors) of the reconstructed network per batch; ``refit.loss(kept)`` is the label-free refit loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.graph.load import export_clean
from edgeprune.graph.model import ModelGraph
from edgeprune.scoring.plan_refit import PlanRefit
from edgeprune.search.evaluator import MaskedEvaluator, _mask_inputs_model

WEIGHT_PREFIX = "edgeprune.weight:"
BIAS_PREFIX = "edgeprune.bias:"


class ReconstructedEvaluator(MaskedEvaluator):
    """The masked evaluator whose refittable layers take their weights and a bias correction as inputs."""

    def __init__(
        self,
        model: ModelGraph,
        analysis: ChannelAnalysis,
        refit: PlanRefit,
        batches: Sequence[Mapping[str, np.ndarray]],
        extra_outputs: Sequence[str] = (),
        provider: str = "auto",
        threads: int | None = None,
    ) -> None:
        self.refit = refit
        self._bias_shapes: dict[str, tuple[int, ...]] = {}
        super().__init__(model, analysis, batches, extra_outputs, provider, threads)
        self._unchanged = {
            **{WEIGHT_PREFIX + layer.node: refit.original_weight(layer.node) for layer in refit.layers},
            **{BIAS_PREFIX + node: np.zeros(shape, dtype=np.float32) for node, shape in self._bias_shapes.items()},
        }

    def _graph(self, model: ModelGraph, analysis: ChannelAnalysis):
        import onnx_graphsurgeon as gs

        graph = ModelGraph.from_proto(_mask_inputs_model(model, analysis, self.mask_inputs)).gs_graph()
        nodes = {node.name: node for node in graph.nodes}
        for layer in self.refit.layers:
            node = nodes[layer.node]
            weight = gs.Variable(WEIGHT_PREFIX + layer.node, dtype=np.float32, shape=list(layer.shape))
            node.inputs[1] = weight
            graph.inputs.append(weight)
            output = node.outputs[0]
            rank = len(model.shapes.get(output.name, ())) or 2
            shape = (layer.outputs,) if node.op == "MatMul" else (1, layer.outputs) + (1,) * (rank - 2)
            self._bias_shapes[layer.node] = shape
            bias = gs.Variable(BIAS_PREFIX + layer.node, dtype=np.float32, shape=list(shape))
            graph.inputs.append(bias)
            before = gs.Variable(f"{output.name}.before_refit_bias", dtype=output.dtype)
            node.outputs[0] = before
            graph.nodes.append(gs.Node("Add", name=f"{layer.node}.refit_bias", inputs=[before, bias], outputs=[output]))
        return export_clean(graph)

    def feeds(self, kept: Mapping[str, Sequence[int]]) -> dict[str, np.ndarray]:
        """The plan's masks, the refit weights and bias corrections of the layers it takes inputs from, and
        the original weights (no correction) of the others."""
        feeds = {**self.masks(kept), **self._unchanged}
        for fit in self.refit.refit(kept):
            feeds[WEIGHT_PREFIX + fit.node] = fit.weight
            feeds[BIAS_PREFIX + fit.node] = fit.bias_delta.reshape(self._bias_shapes[fit.node])
        return feeds
