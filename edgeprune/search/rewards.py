"""Rewards of the RL search as pure functions of what the masked model computed (docs/methods.md#rl-search).

- ``entropy`` (default, label-free, P2): R = -mean over measured layers of (mean spatial aura entropy of the
  kept maps / the same in the unpruned model). A dead map (constant: no spread, entropy 0) counts at the
  ceiling entropy log2(G^2), the entropy of pure noise, so losing a map's structure can never look good.
- ``accuracy`` (AMC): top-1 accuracy on labelled images (smooth: the mean probability of the label).
- ``agreement`` (label-free): the share of images whose top-1 class matches the unpruned model's (smooth:
  minus the KL divergence of the outputs from the unpruned model's).
- ``refit`` (label-free, `Judge`): minus the share of their outputs the refitted layers lose.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeprune.maps.aura import image_aura_entropy
from edgeprune.maps.quantize import default_levels, quantize_maps


def map_entropies(maps: np.ndarray, levels: int | None = None) -> np.ndarray:
    """Per image and channel (N, C), the spatial aura entropy in bits of maps (N, C, H, W); dead maps at the ceiling."""
    levels = levels or default_levels(*maps.shape[2:])
    codes, dead = quantize_maps(maps, levels)
    entropy = image_aura_entropy(codes, levels, dead)
    entropy[dead] = np.log2(levels * levels)
    return entropy


def entropy_ratios(
    pruned: Sequence[np.ndarray],
    original: Sequence[np.ndarray],
    kept: Sequence[np.ndarray],
    reference: str = "kept",
    ceilings: Sequence[float] | None = None,
) -> np.ndarray:
    """Per measured layer: mean entropy of the kept maps (``pruned[i]``: N x kept) over the unpruned model's mean,
    of the same kept maps (``reference="kept"``) or of all the layer's maps (``"all"``; ``original[i]``: N x C).

    ``"dead"``: the pruned model's maps of the whole layer, the removed channels being what they are there
    (constant zero, so dead, at ``ceilings[i]``), over all the layer's maps in the unpruned model. Unlike the
    two others, it sees the pruning of a group whose maps no later measured layer reads (the last one)."""
    ratios = []
    for i, (now, before, mask) in enumerate(zip(pruned, original, kept)):
        if reference == "dead":
            assert ceilings is not None, "the dead reference needs the layers' ceilings"
            dropped = float(len(mask) - np.count_nonzero(mask))
            value = (float(now.sum()) + len(now) * dropped * float(ceilings[i])) / (len(now) * len(mask))
            ratios.append(value / max(float(before.mean()), 1e-12))
            continue
        base = before[:, mask] if reference == "kept" else before
        ratios.append(float(now.mean()) / max(float(base.mean()), 1e-12))
    return np.asarray(ratios)


def entropy_reward(
    pruned: Sequence[np.ndarray],
    original: Sequence[np.ndarray],
    kept: Sequence[np.ndarray],
    reference: str = "kept",
    ceilings: Sequence[float] | None = None,
) -> float:
    ratios = entropy_ratios(pruned, original, kept, reference, ceilings)
    return -float(ratios.mean()) if len(ratios) else 0.0


def ceiling(shape: Sequence) -> float:
    """The entropy of pure noise (a uniform aura matrix) for maps of ``shape`` (..., H, W): log2(G^2)."""
    levels = default_levels(*shape[-2:])
    return float(np.log2(levels * levels))


def top1(logits: np.ndarray) -> np.ndarray:
    """The class of each sample: argmax over axis 1 of a (N, classes, ...) output, flattened per sample."""
    logits = np.asarray(logits)
    return logits.reshape(len(logits), logits.shape[1], -1).argmax(axis=1).reshape(len(logits), -1)


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax over axis 1 of a (N, classes, ...) output, as (N, classes, positions)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z.reshape(len(z), z.shape[1], -1)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def accuracy_reward(logits: np.ndarray, labels: np.ndarray, smooth: bool = False) -> float:
    """Top-1 accuracy; ``smooth``: the mean probability given to the label (the accuracy expected of a
    draw from the outputs), which orders plans that a few hundred images cannot tell apart by top-1."""
    labels = np.asarray(labels).reshape(-1)
    if smooth:
        return float(np.mean(probabilities(logits)[np.arange(len(labels)), labels, 0]))
    return float(np.mean(top1(logits)[:, 0] == labels))


def agreement_reward(logits: np.ndarray, original: np.ndarray, smooth: bool = False) -> float:
    """Top-1 agreement with the original's outputs; ``smooth``: minus the mean KL divergence of the outputs
    from the original's, KL(original || pruned) per image (and position): zero for the original itself.
    Of the smooth forms measured (docs/results-search.md) it ranks plans closest to the truth."""
    if not smooth:
        return float(np.mean(top1(logits) == top1(original)))
    p, q = probabilities(logits), probabilities(original)
    kl = np.sum(q * (np.log(np.maximum(q, 1e-12)) - np.log(np.maximum(p, 1e-12))), axis=1)
    return -float(np.mean(kl))
