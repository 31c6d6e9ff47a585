"""Channel scores: the criteria by name (registry, criteria), the refit-error greedy removal, and
`measure_and_score`, which captures what a criterion reads and scores every prunable group.

The maths of the activation criteria (per-map quantisation, aura matrices and entropy, aura MI, the streaming
``LayerAccumulator``) lives in `edgeprune.maps`, below capture, which streams it; it is re-exported here for
existing callers.
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
