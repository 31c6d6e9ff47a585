"""ONNX Runtime sessions: the CUDA provider when it really works (probed), the CPU provider otherwise."""

from __future__ import annotations

import contextlib
import functools
import io
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


def cuda_works() -> bool:
    """Create a tiny session on the CUDA provider and see whether it stays there.

    `get_available_providers()` lists CUDA even where its libraries cannot load, so it proves nothing.
    """
    return provider_works("CUDAExecutionProvider")


def tensorrt_works() -> bool:
    return provider_works("TensorrtExecutionProvider")


@functools.cache
def provider_works(name: str) -> bool:
    """A tiny session on provider ``name`` (CUDA behind it, then CPU): does ``name`` stay first?"""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    if name not in ort.get_available_providers():
        return False
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    ort.set_default_logger_severity(4)  # a missing CUDA library is logged as an error: expected, not news
    try:  # ONNX Runtime prints a failed provider's error on stdout, then falls back: keep the probe quiet
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            session = ort.InferenceSession(model.SerializeToString(), _session_options(), providers=_chain(name))
    except Exception:  # a broken CUDA install raises here on some versions
        return False
    finally:
        ort.set_default_logger_severity(2)
    return session.get_providers()[0] == name


def _chain(name: str) -> list[str]:
    order = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    return order[order.index(name) :]


def resolve_providers(provider: str = "cpu") -> list[str]:
    """``auto`` picks CUDA only when it really works; ``cpu``, ``cuda`` and ``tensorrt`` are explicit."""
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    if provider == "tensorrt":
        if tensorrt_works():
            logger.info("using the TensorRT execution provider")
            return _chain("TensorrtExecutionProvider")
        raise InputError("the TensorRT execution provider does not work on this machine; use --provider cuda or cpu")
    if provider in ("auto", "cuda"):
        if cuda_works():
            logger.info("using the CUDA execution provider")
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if provider == "cuda":
            raise InputError("the CUDA execution provider does not work on this machine; use --provider cpu")
        logger.info("using the CPU execution provider (CUDA is not usable here)")
        return ["CPUExecutionProvider"]
    raise InputError(f"unknown provider '{provider}'; choose one of auto, cpu, cuda, tensorrt")


def create_session(
    model_bytes: bytes, provider: str = "cpu", threads: int | None = None, disabled_optimizers: Sequence[str] = ()
):
    """A session on the provider; ``disabled_optimizers`` names ONNX Runtime graph rewrites to leave out."""
    import onnxruntime as ort

    return ort.InferenceSession(
        model_bytes,
        _session_options(threads),
        providers=resolve_providers(provider),
        disabled_optimizers=list(disabled_optimizers) or None,
    )


def run(session, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
    return session.run(list(outputs) if outputs else None, dict(feeds))
