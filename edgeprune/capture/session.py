"""Running a model with extra outputs over calibration batches: CUDA with IO binding where it works, CPU otherwise."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import onnx

from edgeprune.graph.model import ModelGraph
from edgeprune.runtime import create_session

logger = logging.getLogger(__name__)

# ONNX Runtime's Conv+Add+Relu fusion can swallow a conv output even when it was asked for as a graph output
# (session creation then fails with "Failed to find node output"); a session that exists to read
# intermediate tensors leaves that fusion out.
KEEPS_OUTPUTS = ("ConvAddActivationFusion",)


def with_outputs(model: ModelGraph, names: Sequence[str]) -> bytes:
    """The model's bytes with ``names`` added as graph outputs (types and shapes from inference)."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    present = {o.name for o in proto.graph.output}
    infos = {info.name: info for info in proto.graph.value_info}
    for name in names:
        if name in present:
            continue
        info = infos.get(name)
        if info is None:
            elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(model.dtypes.get(name, np.float32)))
            info = onnx.helper.make_tensor_value_info(name, elem, None)
        proto.graph.output.append(info)
        present.add(name)
    return proto.SerializeToString()


class ActivationRunner:
    """One session that returns the requested tensors for each batch of inputs."""

    def __init__(self, model: ModelGraph, names: Sequence[str], provider: str = "auto", threads: int | None = None):
        self.names = list(dict.fromkeys(names))
        self.session = create_session(with_outputs(model, self.names), provider, threads, KEEPS_OUTPUTS)
        self.on_cuda = self.session.get_providers()[0] == "CUDAExecutionProvider"

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.on_cuda:
            return dict(zip(self.names, self.session.run(self.names, inputs)))
        binding = self.session.io_binding()  # inputs copied once, outputs kept on the device until read
        for name, value in inputs.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in self.names:
            binding.bind_output(name, "cuda")
        self.session.run_with_iobinding(binding)
        return dict(zip(self.names, binding.copy_outputs_to_cpu()))

    def stream(self, batches) -> Iterator[tuple[Any, dict[str, np.ndarray]]]:
        for batch in batches:
            yield batch, self.run(batch.inputs)
