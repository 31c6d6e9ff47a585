"""Proof of surgery: the pruned model must compute what the masked original computes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.graph.model import ModelGraph
from edgeprune.runtime import create_session
from edgeprune.surgery.mask import masked_model
from edgeprune.surgery.plan import PruningPlan

DEFAULT_RTOL = 1e-4


@dataclass(frozen=True)
class OutputDifference:
    name: str
    max_abs: float
    max_rel: float


@dataclass(frozen=True)
class Verification:
    """``max_rel`` is the largest absolute difference relative to the output's largest magnitude."""

    outputs: tuple[OutputDifference, ...]
    tolerance: float

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for o in self.outputs), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((o.max_rel for o in self.outputs), default=0.0)

    @property
    def passed(self) -> bool:
        return self.max_rel <= self.tolerance

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "tolerance": self.tolerance,
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "outputs": [o.__dict__ for o in self.outputs],
        }


def random_inputs(model: ModelGraph, batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs for every model input; symbolic dimensions become ``batch``."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name in model.input_names:
        shape = [d if isinstance(d, int) and d > 0 else batch for d in model.shapes.get(name, ())]
        dtype = model.dtypes.get(name, np.dtype(np.float32))
        if np.issubdtype(dtype, np.floating):
            feeds[name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[name] = np.zeros(shape, dtype=dtype)
    return feeds


def run_model(model: ModelGraph, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = create_session(model.serialized(), "cpu")
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds))))


def compare_outputs(
    reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray], tolerance: float = DEFAULT_RTOL
) -> Verification:
    diffs = []
    for name, expected in reference.items():
        got = candidate[name]
        expected64, got64 = expected.astype(np.float64), got.astype(np.float64)
        max_abs = float(np.max(np.abs(expected64 - got64))) if expected.size else 0.0
        scale = float(np.max(np.abs(expected64))) if expected.size else 0.0
        diffs.append(OutputDifference(name, max_abs, max_abs / scale if scale > 0 else max_abs))
    return Verification(tuple(diffs), tolerance)


def verify(
    original: ModelGraph,
    analysis: ChannelAnalysis,
    plan: PruningPlan,
    pruned: ModelGraph,
    feeds: Mapping[str, np.ndarray] | None = None,
    tolerance: float = DEFAULT_RTOL,
) -> Verification:
    """Compare ``pruned`` with the masked original on ``feeds`` (seeded random inputs by default): the
    plan's channels zeroed where they are summed over, its removed blocks' branches zeroed at their Adds."""
    from edgeprune.surgery.depth import channel_kept, plan_blocks

    feeds = feeds if feeds is not None else random_inputs(original)
    _, removed = plan_blocks(original, analysis, plan)
    reference = masked_model(original, analysis, analysis.keep_mask(channel_kept(plan.kept, removed)), removed)
    return compare_outputs(run_model(reference, feeds), run_model(pruned, feeds), tolerance)
