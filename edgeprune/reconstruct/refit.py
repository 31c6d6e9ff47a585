"""Reconstruction: refit each consumer of pruned channels so its output matches the original model's.

Consumers go in topological order and each one's inputs come from the already-pruned (and already
refitted) network, so the errors of earlier layers are corrected by later ones (He et al. 2017, ThiNet).
`schedule` groups them into levels fitted from one pass each (each pass computing only what the earlier ones
did not), from sums streamed over the rows (`streamed`), so memory does not grow with the number of images.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.capture.spool import DEFAULT_BUDGET_BYTES
from edgeprune.graph.load import export_clean
from edgeprune.graph.model import ModelGraph
from edgeprune.reconstruct.depth import follow_removed_blocks
from edgeprune.reconstruct.schedule import LayerRefit, Schedule, ScheduleSettings
from edgeprune.reconstruct.targets import find_targets
from edgeprune.surgery.plan import PruningPlan

logger = logging.getLogger(__name__)


SCOPES = ("downstream", "lost")


@dataclass(frozen=True)
class ReconstructionReport:
    layers: tuple[LayerRefit, ...]
    images: int
    samples_per_image: int
    ridge: float

    def to_dict(self) -> dict:
        return {
            "images": self.images,
            "samples_per_image": self.samples_per_image,
            "ridge": self.ridge,
            "layers": [asdict(layer) for layer in self.layers],
        }


def reconstruct(
    original: ModelGraph,
    pruned: ModelGraph,
    analysis: ChannelAnalysis,
    plan: PruningPlan,
    calibration,
    *,
    samples_per_image: int = 16,
    ridge: float = 1e-3,
    batch_size: int = 64,
    provider: str = "cpu",
    seed: int = 0,
    scope: str = "downstream",
    statistics=None,
    progress=None,
    memory: int = DEFAULT_BUDGET_BYTES,
) -> tuple[ModelGraph, ReconstructionReport]:
    """Refit layers of ``pruned`` so their outputs match ``original``'s on ``calibration``.

    ``scope`` "lost": only the layers that lost input channels. "downstream" (the default): also every
    other Conv, Gemm or MatMul by a stored matrix whose inputs changed because something before it was
    pruned or refitted, the classifier included, so the drift that passes through untouched layers is
    corrected too. The rows of a channels-last MatMul are its input vectors at sampled spatial sites.

    ``statistics``: the `ConsumerGrams` scoring captured on the same ``calibration`` (same sites and seed);
    the layers whose inputs pruning left unchanged are then fitted from them with no pass (`reuse`), and
    the original tensors it kept at those sites stand in for a pass of the original model.
    ``progress(stage, done, total)`` is called after each layer; ``memory`` bounds the per-image data held
    in memory between passes (the rest goes to temporary files).
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown reconstruction scope {scope!r}; valid: {', '.join(SCOPES)}")
    keep = analysis.keep_mask(plan.kept)
    targets, skipped = find_targets(original, analysis, keep, scope)
    targets = follow_removed_blocks(targets, original, analysis, plan)  # depth pruning: see reconstruct/depth.py
    graph = pruned.gs_graph()
    settings = ScheduleSettings(samples_per_image, ridge, batch_size, provider, seed, memory)
    reuse = {}
    if statistics is not None:
        from edgeprune.reconstruct.reuse import reusable

        reuse = reusable(
            statistics,
            targets,
            original,
            graph,
            analysis,
            keep,
            calibration,
            samples_per_image=samples_per_image,
            seed=seed,
        )
    references = getattr(statistics, "references", None)  # the original's tensors the capture pass kept
    schedule = Schedule(original, graph, targets, calibration, settings, reuse, progress, references)
    layers = [LayerRefit(name, op, 0, 0, float("nan"), float("nan"), False, note) for name, op, note in skipped]
    layers += schedule.run()
    logger.info(
        "reconstruction: %d layers in %d passes (%d fitted from the scoring statistics)",
        len(targets),
        schedule.passes,
        len(reuse),
    )
    rebuilt = ModelGraph.from_proto(export_clean(graph), source_sha256=pruned.source_sha256, notes=pruned.notes)
    return rebuilt, ReconstructionReport(tuple(layers), calibration.count, samples_per_image, ridge)
