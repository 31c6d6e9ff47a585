"""ONNX element types as torch dtypes."""

from __future__ import annotations

import torch
from onnx import TensorProto

_TORCH_DTYPES: dict[int, torch.dtype] = {
    TensorProto.FLOAT: torch.float32,
    TensorProto.DOUBLE: torch.float64,
    TensorProto.FLOAT16: torch.float16,
    TensorProto.BFLOAT16: torch.bfloat16,
    TensorProto.INT64: torch.int64,
    TensorProto.INT32: torch.int32,
    TensorProto.INT16: torch.int16,
    TensorProto.INT8: torch.int8,
    TensorProto.UINT8: torch.uint8,
    TensorProto.BOOL: torch.bool,
}


def torch_dtype(elem_type: int, node=None) -> torch.dtype:
    if elem_type not in _TORCH_DTYPES:
        why = f"element type {TensorProto.DataType.Name(elem_type)} is not implemented"
        if node is not None:
            raise node.refuse(why)
        raise ValueError(why)
    return _TORCH_DTYPES[elem_type]
