"""ONNX Runtime sessions: the CUDA provider when it really works (probed), the CPU provider otherwise."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence

import numpy as np

from edgeprune.errors import InputError

logger = logging.getLogger(__name__)

_QUIET = 3  # onnxruntime log severity: errors only


def _session_options(threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = _QUIET
    if threads:
        options.intra_op_num_threads = threads
    return options


@functools.lru_cache(maxsize=None)
def cuda_works() -> bool:
    """Create a tiny session on the CUDA provider and see whether it stays there.

    `get_available_providers()` lists CUDA even where its libraries cannot load, so it proves nothing.
    """
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    ort.set_default_logger_severity(4)  # a missing CUDA library is logged as an error: expected, not news
    try:
        session = ort.InferenceSession(
            model.SerializeToString(), _session_options(), providers=["CUDAExecutionProvider", "CPUExecutionProvider"]
        )
    except Exception:  # a broken CUDA install raises here on some versions
        return False
    finally:
        ort.set_default_logger_severity(2)
    return session.get_providers()[0] == "CUDAExecutionProvider"


def resolve_providers(provider: str = "cpu") -> list[str]:
    """``auto`` picks CUDA only when it really works; ``cpu`` and ``cuda`` are explicit."""
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    if provider in ("auto", "cuda"):
        if cuda_works():
            logger.info("using the CUDA execution provider")
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if provider == "cuda":
            raise InputError("the CUDA execution provider does not work on this machine; use --provider cpu")
        logger.info("using the CPU execution provider (CUDA is not usable here)")
        return ["CPUExecutionProvider"]
    raise InputError(f"unknown provider '{provider}'; choose one of auto, cpu, cuda")


def create_session(model_bytes: bytes, provider: str = "cpu", threads: int | None = None):
    import onnxruntime as ort

    return ort.InferenceSession(model_bytes, _session_options(threads), providers=resolve_providers(provider))


def run(session, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
    return session.run(list(outputs) if outputs else None, dict(feeds))
