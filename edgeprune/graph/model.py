"""`ModelGraph`: a normalised ONNX model with its inferred shapes, never mutated in place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import onnx

from edgeprune.graph.io import write_bytes_atomic

Dim = int | str | None
Shape = tuple[Dim, ...]

#: Highest IR version ONNX Runtime accepts on our supported versions; onnx >= 1.23 writes 14.
MAX_IR_VERSION = 10
_TWO_GIB = 2**31


@dataclass(frozen=True)
class ModelGraph:
    """An ONNX model after loading and normalisation.

    ``proto`` is treated as immutable: every stage that changes the model (surgery, masking) works on a
    fresh onnx-graphsurgeon import from :meth:`gs_graph` and returns a new ``ModelGraph``.
    """

    proto: onnx.ModelProto
    shapes: Mapping[str, Shape]
    dtypes: Mapping[str, np.dtype]
    source_sha256: str = ""
    source_path: str = ""
    notes: tuple[str, ...] = field(default=())

    @classmethod
    def from_proto(
        cls,
        proto: onnx.ModelProto,
        *,
        source_sha256: str = "",
        source_path: str = "",
        notes: tuple[str, ...] = (),
    ) -> ModelGraph:
        """Infer shapes (keeping symbolic dims) and wrap; ``proto`` must already be normalised."""
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, data_prop=True)
        shapes, dtypes = _collect_shapes(inferred)
        return cls(inferred, MappingProxyType(shapes), MappingProxyType(dtypes), source_sha256, source_path, notes)

    @property
    def opset(self) -> int:
        return next((o.version for o in self.proto.opset_import if o.domain in ("", "ai.onnx")), 0)

    @property
    def input_names(self) -> tuple[str, ...]:
        initializers = {t.name for t in self.proto.graph.initializer}
        return tuple(i.name for i in self.proto.graph.input if i.name not in initializers)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.proto.graph.output)

    def gs_graph(self):
        """A fresh, independent onnx-graphsurgeon graph of this model (safe to mutate)."""
        import onnx_graphsurgeon as gs

        return gs.import_onnx(self.proto)

    def serialized(self) -> bytes:
        return self.proto.SerializeToString()

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically. Models over 2 GiB are not expected on edge devices and are refused."""
        data = self.serialized()
        if len(data) >= _TWO_GIB:
            raise ValueError("models over 2 GiB cannot be written as a single ONNX file")
        return write_bytes_atomic(path, data)


def _collect_shapes(model: onnx.ModelProto) -> tuple[dict[str, Shape], dict[str, np.dtype]]:
    shapes: dict[str, Shape] = {}
    dtypes: dict[str, np.dtype] = {}
    graph = model.graph
    for info in list(graph.input) + list(graph.value_info) + list(graph.output):
        ttype = info.type.tensor_type
        if not ttype.HasField("elem_type"):
            continue
        dtypes[info.name] = onnx.helper.tensor_dtype_to_np_dtype(ttype.elem_type)
        if ttype.HasField("shape"):
            shapes[info.name] = tuple(
                d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in ttype.shape.dim
            )
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
        dtypes[init.name] = onnx.helper.tensor_dtype_to_np_dtype(init.data_type)
    return shapes, dtypes
