"""The criteria of docs/methods.md#scoring-criteria (aura-mi, aura-mi-label, entropy, hist-mi, l1, activation,
random) and refit-error (the default), which picks channels for the least-squares reconstruction."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from edgeprune.scoring.registry import ScoringContext, per_channel, register_scorer


def _alive(context: ScoringContext, group) -> np.ndarray | None:
    dead = per_channel(context, group, "dead_fraction")
    return None if dead is None else 1.0 - dead


def _weighted(context: ScoringContext, group, field_name: str) -> np.ndarray | None:
    values, alive = per_channel(context, group, field_name), _alive(context, group)
    return None if values is None or alive is None else values * alive


@register_scorer("aura-mi", measures=frozenset({"aura_mi"}))
def aura_mi(context: ScoringContext, group) -> np.ndarray | None:
    """How much of a channel's spatial information reaches the next layer (sum over its channels of aura MI)."""
    return _weighted(context, group, "aura_mi")


@register_scorer("aura-mi-label", measures=frozenset({"label_mi"}))
def aura_mi_label(context: ScoringContext, group) -> np.ndarray | None:
    """MI between a channel's per-image aura entropy and the class (labels, else the model's own top-1)."""
    return _weighted(context, group, "label_mi")


@register_scorer("entropy", measures=frozenset({"entropy"}))
def entropy(context: ScoringContext, group) -> np.ndarray | None:
    """Structured (low spatial entropy) maps are kept; noisy ones go first, dead ones before them.

    Entropy is taken relative to its ceiling (a uniform aura matrix), since layers quantise with
    different numbers of levels."""
    values, alive = per_channel(context, group, "relative_entropy"), _alive(context, group)
    return None if values is None or alive is None else (1.0 - values) * alive


@register_scorer("hist-mi", measures=frozenset({"hist_mi"}))
def hist_mi(context: ScoringContext, group) -> np.ndarray | None:
    """Plain histogram MI with the next layer, no spatial term: the baseline aura MI improves on."""
    return _weighted(context, group, "hist_mi")


@register_scorer("activation")
def activation(context: ScoringContext, group) -> np.ndarray | None:
    """Mean absolute activation."""
    return per_channel(context, group, "mean_abs_activation")


@register_scorer("l1", measures=None)
def l1(context: ScoringContext, group) -> np.ndarray | None:
    """L1 norm of each channel's producing filters (summed over the group's producers)."""
    analysis, graph = context.analysis, context.model.proto.graph
    weights = {t.name: t for t in graph.initializer}
    index = analysis.group_index(group.id)
    total = np.zeros(group.channels)
    producers = set(group.producers)
    for node in graph.node:
        if node.name not in producers or len(node.input) < 2 or node.input[1] not in weights:
            continue
        weight = numpy_helper.to_array(weights[node.input[1]])
        out_axis = (
            1
            if node.op_type == "ConvTranspose"
            or (node.op_type == "MatMul")
            or (node.op_type == "Gemm" and not any(a.name == "transB" and a.i for a in node.attribute))
            else 0
        )
        norms = np.abs(np.moveaxis(weight, out_axis, 0)).reshape(weight.shape[out_axis], -1).sum(axis=1)
        classes = analysis.tensors[node.output[0]].classes
        mine = analysis.class_group[classes] == index
        np.add.at(total, analysis.class_index[classes[mine]], norms[mine])
    return total


@register_scorer("refit-error", measures=None, grams=True)
def refit_error(context: ScoringContext, group) -> np.ndarray | None:
    """How much of the consumers' outputs their least-squares refit loses once the channel is gone, removing
    channels greedily (scoring.removal); on one scale across groups."""
    from edgeprune.scoring.removal import removal_scores

    return None if context.grams is None else removal_scores(context.grams, context.analysis, group, context.ridge)


@register_scorer("random", measures=None)
def random(context: ScoringContext, group) -> np.ndarray | None:
    """Seeded random scores: the floor any criterion must beat."""
    seed = (context.seed, context.analysis.group_index(group.id))
    return np.random.default_rng(seed).random(group.channels)
