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
from edgeprune.capture.points import capture_points
from edgeprune.graph.model import ModelGraph
from edgeprune.search.evaluator import MaskedEvaluator
from edgeprune.search.rewards import accuracy_reward, agreement_reward, ceiling, entropy_reward, map_entropies


def measured_layers(model: ModelGraph, analysis: ChannelAnalysis) -> tuple[str, ...]:
    """The maps the entropy reward reads: every capture point with at least 2 x 2 sites (1 x 1 maps have no aura)."""
    names = []
    for point in capture_points(model, analysis):
        shape = model.shapes.get(point.tensor, ())
        sites = np.prod([d for d in shape[2:] if isinstance(d, int)] or [0])
        if len(shape) == 4 and sites >= 4:
            names.append(point.tensor)
    return tuple(names)


class Judge:
    """``judge(kept)`` -> the reward of a plan on fixed images; ``seconds`` splits session and reward time."""

    def __init__(
        self,
        model: ModelGraph,
        analysis: ChannelAnalysis,
        batches: Sequence[Mapping[str, np.ndarray]],
        labels: np.ndarray | None,
        reward: str,
        provider: str = "auto",
        entropy_reference: str = "kept",
    ) -> None:
        self.analysis, self.reward, self.labels, self.reference = analysis, reward, labels, entropy_reference
        self.layers = measured_layers(model, analysis) if reward == "entropy" else ()
        self.output = model.output_names[0]
        self.evaluator = MaskedEvaluator(model, analysis, batches, extra_outputs=self.layers, provider=provider)
        self.seconds = {"session": 0.0, "reward": 0.0}
        self.calls = 0
        original = self.evaluator.evaluate({})
        self.original_logits = np.concatenate([r[self.output] for r in original])
        self.original_entropy = [np.concatenate([map_entropies(r[name]) for r in original]) for name in self.layers]
        self.ceilings = [ceiling(original[0][name].shape) for name in self.layers]

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
            masks = [self.analysis.kept_positions(name, keep) for name in self.layers]
            pruned = [
                np.concatenate([map_entropies(r[name][:, mask]) for r in results])
                for name, mask in zip(self.layers, masks)
            ]
            return entropy_reward(pruned, self.original_entropy, masks, self.reference, self.ceilings)
        logits = np.concatenate([r[self.output] for r in results])
        if self.reward == "accuracy":
            return accuracy_reward(logits, self.labels)
        return agreement_reward(logits, self.original_logits)
