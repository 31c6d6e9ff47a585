"""Models as data: loading, normalising and writing ONNX files, and fixing their input sizes."""

from edgeprune.graph.concrete import (
    fix_input_shapes,
    input_shapes_of,
    restore_dynamic_dims,
    shapes_from_calibration,
    with_input_shapes,
)
from edgeprune.graph.load import load_model, normalize_proto, read_model_proto
from edgeprune.graph.model import ModelGraph
from edgeprune.graph.shapes import DynamicDim, dynamic_dims, parse_input_shapes, require_concrete

__all__ = [
    "DynamicDim",
    "ModelGraph",
    "dynamic_dims",
    "fix_input_shapes",
    "input_shapes_of",
    "load_model",
    "normalize_proto",
    "parse_input_shapes",
    "read_model_proto",
    "require_concrete",
    "restore_dynamic_dims",
    "shapes_from_calibration",
    "with_input_shapes",
]
