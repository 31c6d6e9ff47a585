"""The maths of the channel scores: spatial aura entropy and aura mutual information (docs/methods.md).

Pipeline for one layer: ``quantize_maps`` (per-map min-max codes, dead maps flagged) -> ``aura_counts``
(8-neighbour aura matrices) -> ``aura_entropy``; with the consumer layer's maps, ``cross_aura_counts``
-> ``aura_mi_importance``. ``LayerAccumulator`` streams all of it over a calibration set.
"""

from edgeprune.scoring.accumulate import LayerAccumulator
from edgeprune.scoring.aura import aura_counts, aura_entropy, image_aura_entropy, neighbour_pair_count
from edgeprune.scoring.information import (
    aura_mi_importance,
    cross_aura_counts,
    default_stride,
    entropy_bin_codes,
    histogram_joint_counts,
    label_joint_counts,
    label_mi,
    mutual_information,
)
from edgeprune.scoring.quantize import default_levels, match_resolution, quantize_maps

__all__ = [
    "LayerAccumulator",
    "aura_counts",
    "aura_entropy",
    "aura_mi_importance",
    "cross_aura_counts",
    "default_levels",
    "default_stride",
    "entropy_bin_codes",
    "histogram_joint_counts",
    "image_aura_entropy",
    "label_joint_counts",
    "label_mi",
    "match_resolution",
    "mutual_information",
    "neighbour_pair_count",
    "quantize_maps",
]
