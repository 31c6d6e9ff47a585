"""Semiotic analysis (P3): per-layer saliency maps, their spatial aura entropy, the superization curve,
and the `semiotic` selection strategy that prunes where the curve changes least.

(`edgeprune.analysis` is the channel analysis of the graph; this package is about what the layers see.)
"""

from edgeprune.semiotic.curve import CurveAccumulator, LayerEntropy, SuperizationCurve, curve_distance, saliency_maps
from edgeprune.semiotic.layers import SaliencyLayer, saliency_layers

__all__ = [
    "CurveAccumulator",
    "LayerEntropy",
    "SaliencyLayer",
    "SuperizationCurve",
    "curve_distance",
    "saliency_layers",
    "saliency_maps",
]
