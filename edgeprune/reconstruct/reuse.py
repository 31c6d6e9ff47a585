"""Which layers reconstruction fits from the statistics scoring captured, with no pass of their own.

Scoring (`capture.grams`) sums, per layer that reads prunable channels, X^T X and the column sums of its
regression rows, on the original model, at the sites reconstruction samples. For a layer whose inputs
pruning did not change (no layer before it lost inputs or is refitted: its kept columns hold the original
values) the fit's rows are the kept columns of those rows, and its target, the layer's own original output,
is X W^T + b over all of them; with no ReLU after it to refine the fit for, the ridge fit and its errors
follow from those sums alone (`streamed.from_gram`), the same fit a pass would give.
"""

from __future__ import annotations

import numpy as np

from edgeprune.reconstruct.levels import changed_tensors
from edgeprune.reconstruct.streamed import Sums, from_gram
from edgeprune.reconstruct.weights import parameters


def reusable(grams, targets, original, graph, analysis, keep, calibration, *, samples_per_image: int, seed: int):
    """{layer: its sums per conv group} for every target that can be fitted from ``grams`` alone."""
    if grams is None or not getattr(grams, "grams", ()):
        return {}
    if (grams.images, grams.samples_per_image, getattr(grams, "seed", None)) != (
        calibration.count,
        samples_per_image,
        seed,
    ):
        return {}  # other images or other sites: not the rows reconstruction fits
    present = {node.name for node in graph.nodes}
    if any(node.name not in present for node in original.proto.graph.node):
        return {}  # blocks were removed (depth pruning): tensors after them are not the original ones
    lost = {node for node, tensor in analysis.reducing_edges if not _all_kept(analysis, tensor, keep)}
    changed = changed_tensors(graph, lost)
    by_node: dict[str, list] = {}
    for gram in grams.grams:
        by_node.setdefault(gram.consumer.node, []).append(gram)
    nodes = {node.name: node for node in graph.nodes}
    found = {}
    for target in targets:
        entries = by_node.get(target.node, [])
        if target.rectified or len(entries) != 1 or entries[0].consumer.input != target.input:
            continue
        if target.input in changed or (target.addend is not None and target.addend in changed):
            continue
        gram = entries[0]
        if not getattr(gram, "exact", False):
            continue  # float32 sums: enough for scores, not for a fit
        gram.flush()
        consumer = gram.consumer
        if consumer.geometry is not None and consumer.geometry.groups != 1:
            continue
        _, bias = parameters(target, nodes[target.node], nodes)  # the pruned layer's: the kept outputs'
        weight = consumer.weight[target.kept_out]
        kept = keep[consumer.columns]
        found[target.node] = [from_gram(gram.xx, gram.x_sum, gram.rows, weight, bias, kept)]
    return found


def _all_kept(analysis, tensor: str, keep: np.ndarray) -> bool:
    kept = analysis.kept_positions(tensor, keep)
    return kept is None or bool(kept.all())


__all__ = ["Sums", "reusable"]
