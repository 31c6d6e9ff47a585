"""Models as data: loading, normalising and writing ONNX files."""

from edgeprune.graph.load import load_model, normalize_proto, read_model_proto
from edgeprune.graph.model import ModelGraph

__all__ = ["ModelGraph", "load_model", "normalize_proto", "read_model_proto"]
