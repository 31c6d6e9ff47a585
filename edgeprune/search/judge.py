"""A plan's reward: run it on the masked evaluator's fixed images, then apply a reward function.

What the rewards compare against (the unpruned model's entropies and predictions) is measured once, on the
same images, when the judge is made. The judge keeps the time spent in the session and in the reward apart,
so a search can say where its time goes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.capture.points import CapturePoint, capture_points, channels_first
from edgeprune.graph.model import ModelGraph
from edgeprune.search.evaluator import MaskedEvaluator
from edgeprune.search.rewards import accuracy_reward, agreement_reward, ceiling, entropy_reward, map_entropies


def measured_layers(model: ModelGraph, analysis: ChannelAnalysis) -> tuple[str, ...]:
    """The maps the entropy reward reads: every capture point with at least 2 x 2 sites (1 x 1 maps have no aura),
    N,C,H,W or channels-last N,H,W,C (the hidden activation of a ConvNeXt-style MLP)."""
    return tuple(point.tensor for point in _measured_points(model, analysis))


def _measured_points(model: ModelGraph, analysis: ChannelAnalysis) -> list[CapturePoint]:
    points = []
    for point in capture_points(model, analysis, channels_last=True):
        shape = model.shapes.get(point.tensor, ())
        spatial = [shape[a] for a in point.spatial_axes] if len(shape) == 4 else []
        sites = np.prod([d for d in spatial if isinstance(d, int)] or [0])
        if sites >= 4:
            points.append(point)
    return points


class Judge:
    """``judge(kept)`` -> the reward of a plan on fixed images; ``seconds`` splits session and reward time.

    ``evaluator``: what computes a plan's outputs; by default the masked network before reconstruction
    (`MaskedEvaluator`). With a `SequentialEvaluator` plans are judged as reconstruction would leave
    them, and the ``refit`` reward (minus the sum over the refitted layers of their squared relative error
    after the refit: the share of their output lost) can be used. ``smooth``: accuracy as the mean
    probability of the label, agreement as minus the KL divergence from the original's outputs (`rewards`)."""

    def __init__(
        self,
        model: ModelGraph,
        analysis: ChannelAnalysis,
        batches: Sequence[Mapping[str, np.ndarray]],
        labels: np.ndarray | None,
        reward: str,
        provider: str = "auto",
        entropy_reference: str = "kept",
        evaluator=None,
        smooth: bool = False,
    ) -> None:
        self.analysis, self.reward, self.labels, self.reference = analysis, reward, labels, entropy_reference
        self.smooth = smooth
        points = _measured_points(model, analysis) if reward == "entropy" else []
        self.layers = tuple(point.tensor for point in points)
        self._points = {point.tensor: point for point in points}
        self.output = model.output_names[0]
        if evaluator is None:
            evaluator = MaskedEvaluator(model, analysis, batches, extra_outputs=self.layers, provider=provider)
        elif set(self.layers) - set(evaluator.names):
            raise ValueError("the evaluator does not return the maps the entropy reward reads (measured_layers)")
        if reward == "refit" and not hasattr(evaluator, "last_errors"):
            raise ValueError("the refit reward needs an evaluator that refits (SequentialEvaluator)")
        self.evaluator = evaluator
        self.seconds = {"session": 0.0, "reward": 0.0}
        self.calls = 0
        original = self.evaluator.evaluate({})
        self.original_logits = np.concatenate([r[self.output] for r in original])
        self.original_entropy = [
            np.concatenate([map_entropies(self._maps(r, name)) for r in original]) for name in self.layers
        ]
        self.ceilings = [ceiling(self._maps(original[0], name).shape) for name in self.layers]

    def __call__(self, kept: Mapping[str, Sequence[int]]) -> float:
        start = time.perf_counter()
        results = self.evaluator.evaluate(kept)
        middle = time.perf_counter()
        value = self.score(kept, results)
        self.seconds["session"] += middle - start
        self.seconds["reward"] += time.perf_counter() - middle
        self.calls += 1
        return value

    def score(self, kept, results: list[dict[str, np.ndarray]]) -> float:
        if self.reward == "entropy":
            keep = self.analysis.keep_mask(kept)
            masks = []
            for name in self.layers:
                mask = self.analysis.kept_positions(name, keep)
                assert mask is not None  # a measured layer carries a prunable group's channels
                masks.append(mask)
            pruned = [
                np.concatenate([map_entropies(self._maps(r, name)[:, mask]) for r in results])
                for name, mask in zip(self.layers, masks)
            ]
            return entropy_reward(pruned, self.original_entropy, masks, self.reference, self.ceilings)
        if self.reward == "refit":
            errors = [e for e in self.evaluator.last_errors.values() if np.isfinite(e)]
            return -float(np.sum(np.square(errors))) if errors else 0.0
        logits = np.concatenate([r[self.output] for r in results])
        if self.reward == "accuracy":
            assert self.labels is not None  # run_search refuses the accuracy reward without labels
            return accuracy_reward(logits, self.labels, self.smooth)
        return agreement_reward(logits, self.original_logits, self.smooth)

    def _maps(self, result: Mapping[str, np.ndarray], name: str) -> np.ndarray:
        """A measured layer's maps as N,C,H,W (a channels-last map has its channel axis moved to 1)."""
        return channels_first(result[name], self._points[name])
