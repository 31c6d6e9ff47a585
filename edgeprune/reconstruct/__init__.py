"""Accuracy recovery without training: least-squares reconstruction of the layers after pruned channels."""

from edgeprune.reconstruct.refit import LayerRefit, ReconstructionReport, reconstruct

__all__ = ["LayerRefit", "ReconstructionReport", "reconstruct"]
