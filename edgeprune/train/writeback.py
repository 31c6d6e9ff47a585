"""Write trained values back into the same initializers of the same graph: no re-export, no new topology."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from onnx import numpy_helper

from edgeprune.errors import InputError
from edgeprune.graph import ModelGraph


def write_back(model: ModelGraph, parameters) -> ModelGraph:
    """A copy of ``model`` whose initializers hold ``parameters`` (ONNX name -> tensor or array).

    Only the values change: node list, names, shapes, dtypes, opset and metadata stay byte for byte, and an
    initializer whose value did not change keeps its original encoding, so writing back unchanged weights
    gives a byte-identical model. Non-finite values (a diverged training run) are refused.
    """
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    values = {name: _as_array(value) for name, value in dict(parameters).items()}
    names = {init.name for init in proto.graph.initializer}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"no initializer named {', '.join(unknown[:3])} in the model")
    for init in proto.graph.initializer:
        if init.name not in values:
            continue
        old = numpy_helper.to_array(init)
        new = values[init.name].astype(old.dtype, copy=False)
        if new.shape != old.shape:
            raise ValueError(f"initializer {init.name}: trained shape {new.shape} is not the graph's {old.shape}")
        if not np.isfinite(new).all():
            raise InputError(
                f"training made initializer {init.name} non-finite; lower --lr and run again (nothing was written)"
            )
        if new.tobytes() == old.tobytes():
            continue
        init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(new), init.name))
    return dataclasses.replace(model, proto=proto)


def _as_array(value) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)
