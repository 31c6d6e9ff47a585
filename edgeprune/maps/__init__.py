"""Statistics of activation maps: per-map quantisation, aura matrices and their entropy, aura and histogram MI
with a consumer's maps, label MI, and the streaming accumulator of all of them (docs/methods.md).

Plain numpy (torch for the pair products when importable) and nothing else of edgeprune: it is the floor that
capture (which streams the accumulators) and scoring, search and semiotic (which read the maths) all stand on.
"""

from edgeprune.maps.accumulate import LayerAccumulator
from edgeprune.maps.aura import aura_counts, aura_entropy, image_aura_entropy, neighbour_pair_count
from edgeprune.maps.information import (
    aura_mi_importance,
    cross_aura_counts,
    default_stride,
    entropy_bin_codes,
    histogram_joint_counts,
    label_joint_counts,
    label_mi,
    mutual_information,
)
from edgeprune.maps.quantize import default_levels, match_resolution, quantize_maps

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
