"""Export a torch module to an ONNX file that edgeprune (and ONNX Runtime 1.31) can read.

Both torch exporters are supported: ``legacy`` (TorchScript, ``dynamo=False``) and ``dynamo``
(``torch.export`` + onnxscript). The result is normalised the same way whichever is used: IR version at most
10 (onnx 1.23 writes IR 14, which ONNX Runtime 1.31 rejects), every weight inlined, dim 0 of every input and
output named "batch" when the batch is dynamic, validated by the full ONNX checker and by opening an ONNX
Runtime session, then written atomically so an error never leaves a partial file.

torch, onnx and onnxruntime are imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import secrets
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edgeprune.errors import InputError

if TYPE_CHECKING:
    import onnx
    import torch

log = logging.getLogger(__name__)

MAX_IR_VERSION = 10
BATCH_DIM = "batch"
# Loggers the exporters chat on (progress, fallbacks, "torchvision is not installed" ...); quieted per call.
_NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx", "onnxscript", "onnx_ir")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SUMMARY = "## Exception summary"
_CLASS_PREFIX = re.compile(r"^<class '(?:[\w.]*\.)?(\w+)'>: ")
_HINT = (
    "check that the module runs on the example inputs in eval mode and uses only ops the exporter knows, "
    "or try the other exporter (legacy / dynamo)"
)


def export_torch(
    module: torch.nn.Module,
    example_inputs: Sequence[torch.Tensor],
    path: str | os.PathLike[str],
    *,
    exporter: Literal["legacy", "dynamo"] = "legacy",
    opset: int = 17,
    dynamic_batch: bool = True,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
) -> Path:
    """Export ``module`` (in eval mode) traced on ``example_inputs`` to ``path``; return the path.

    :func:`export_torch_model`, then :func:`write_atomically`. Raises ``InputError`` if the module cannot be
    exported or written.
    """
    model = export_torch_model(
        module,
        example_inputs,
        exporter=exporter,
        opset=opset,
        dynamic_batch=dynamic_batch,
        input_names=input_names,
        output_names=output_names,
    )
    target = Path(path)
    write_atomically(model, target)
    return target


def export_torch_model(
    module: torch.nn.Module,
    example_inputs: Sequence[torch.Tensor],
    *,
    exporter: Literal["legacy", "dynamo"] = "legacy",
    opset: int = 17,
    dynamic_batch: bool = True,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
) -> onnx.ModelProto:
    """Export ``module`` (in eval mode) traced on ``example_inputs``; return the normalised, validated model.

    Nothing is written: a caller can check the model before it reaches the disk. The module is exported in
    eval mode (BatchNorm uses its running statistics and is folded into the preceding Conv) and put back into
    its previous mode afterwards. With ``dynamic_batch`` the dynamo exporter may be unable to keep dim 0
    symbolic for some modules; it then exports a static batch and logs a WARNING with the reason. The dynamo
    exporter writes opset 18 where the model needs an op it cannot convert down (ReduceMean, Split), whatever
    ``opset`` asks. Raises ``InputError`` if the module cannot be exported.
    """
    import torch

    if exporter not in ("legacy", "dynamo"):
        raise InputError(f"unknown exporter {exporter!r}; choose 'legacy' or 'dynamo'")
    inputs = tuple(example_inputs)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            n_outputs = len(flatten_outputs(module(*inputs)))
        in_names = list(input_names) if input_names else _default_names("input", len(inputs))
        out_names = list(output_names) if output_names else _default_names("output", n_outputs)
        if exporter == "legacy":
            model = _export_legacy(module, inputs, opset, dynamic_batch, in_names, out_names)
        else:
            model = _export_dynamo(module, inputs, opset, dynamic_batch, in_names, out_names)
            _log_opset(model, opset)
    except InputError:
        raise
    except Exception as exc:  # the exporters raise anything from RuntimeError to their own types
        raise InputError(f"could not export the torch module to ONNX: {one_line_reason(exc)}; {_HINT}") from exc
    finally:
        module.train(was_training)
    _normalise(model)
    _validate(model)
    return model


def _default_names(prefix: str, count: int) -> list[str]:
    return [prefix] if count == 1 else [f"{prefix}_{i}" for i in range(count)]


def flatten_outputs(outputs: Any) -> list[Any]:
    """The leaves of a module's (nested tuple, list or dict) outputs, in the order the exporters number them."""
    if isinstance(outputs, (tuple, list)):
        return [leaf for item in outputs for leaf in flatten_outputs(item)]
    if isinstance(outputs, dict):
        return [leaf for item in outputs.values() for leaf in flatten_outputs(item)]
    return [outputs]


def one_line_reason(exc: BaseException) -> str:
    """One line saying why an exporter failed.

    torch.export messages run to pages with colour codes and generic "next steps"; the dynamo exporter puts
    the real cause under "## Exception summary", so that line is taken when present.
    """
    text = _ANSI.sub("", str(exc))
    if _SUMMARY in text:
        text = text.split(_SUMMARY, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = _CLASS_PREFIX.sub(r"\1: ", lines[0]) if lines else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


@contextlib.contextmanager
def _quiet_exporters() -> Iterator[None]:
    """Silence the exporters' warnings and log chatter for the duration of one export, then restore."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.CRITICAL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _export_legacy(
    module: torch.nn.Module,
    inputs: tuple[torch.Tensor, ...],
    opset: int,
    dynamic_batch: bool,
    in_names: list[str],
    out_names: list[str],
) -> onnx.ModelProto:
    import onnx
    import torch

    axes = {name: {0: BATCH_DIM} for name in [*in_names, *out_names]} if dynamic_batch else None
    buffer = io.BytesIO()
    with _quiet_exporters():
        torch.onnx.export(
            module,
            inputs,
            buffer,  # type: ignore[arg-type]  # a file object is accepted, though not in the annotation
            dynamo=False,
            opset_version=opset,
            input_names=in_names,
            output_names=out_names,
            dynamic_axes=axes,
            do_constant_folding=True,
            verbose=False,
        )
    return onnx.load_from_string(buffer.getvalue())


def _export_dynamo(
    module: torch.nn.Module,
    inputs: tuple[torch.Tensor, ...],
    opset: int,
    dynamic_batch: bool,
    in_names: list[str],
    out_names: list[str],
) -> onnx.ModelProto:
    import torch

    def run(dynamic_shapes: tuple[dict[int, Any], ...] | None) -> onnx.ModelProto:
        # f=None: serialise the proto ourselves, so the exporter never writes external data files.
        with _quiet_exporters():
            program = torch.onnx.export(
                module,
                inputs,
                None,
                dynamo=True,
                opset_version=opset,
                input_names=in_names,
                output_names=out_names,
                dynamic_shapes=dynamic_shapes,
                external_data=False,
                verbose=False,
            )
        assert program is not None  # torch.onnx.export returns the program on the dynamo path
        return program.model_proto

    if not dynamic_batch:
        return run(None)
    batch = torch.export.Dim(BATCH_DIM)
    try:
        model = run(tuple({0: batch} for _ in inputs))
    except Exception as exc:  # noqa: BLE001 - any failure of the dynamic export is worth a static retry
        model = run(None)  # if this fails too, the module cannot be exported at all: its error is raised
        log.warning(
            "the dynamo exporter could not keep the batch dimension of %s dynamic (%s); "
            "exported it with a static batch of %d",
            type(module).__name__,
            one_line_reason(exc),
            inputs[0].shape[0],
        )
        return model
    static = [v.name for v in [*model.graph.input, *model.graph.output] if not has_batch_dim(v)]
    if static:
        log.warning("the dynamo exporter left a static dim 0 on %s of %s", ", ".join(static), type(module).__name__)
    return model


def _log_opset(model: onnx.ModelProto, opset: int) -> None:
    """Say so when the dynamo exporter did not honour the requested opset.

    It translates at opset 18 at least and down-converts before constant folding, which fails for ops whose
    opset-18 form takes axes as an input (ReduceMean) or has no down-adapter (Split with ``num_outputs``);
    the model then keeps opset 18. ONNX's converter run after folding is no better (it leaves
    ReduceMean-18 attributes on ReduceMean-13), so the exporter's opset is kept.
    """
    current = default_opset(model)
    if current is not None and current != opset:
        log.info("the dynamo exporter wrote opset %d, not the requested %d", current, opset)


def default_opset(model: onnx.ModelProto) -> int | None:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def has_batch_dim(value: onnx.ValueInfoProto) -> bool:
    dims = value.type.tensor_type.shape.dim
    return bool(dims) and dims[0].dim_param == BATCH_DIM


def _normalise(model: onnx.ModelProto) -> None:
    """Make the model loadable by ONNX Runtime 1.31 and self-contained."""
    import onnx

    model.ir_version = min(model.ir_version, MAX_IR_VERSION)
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise InputError(
                f"could not export the torch module to ONNX: weight {tensor.name!r} was written as external "
                f"data; the model must be under 2 GB to be inlined"
            )


def _validate(model: onnx.ModelProto) -> None:
    """Full checker and an ONNX Runtime session: a file we write is always one edgeprune can read back."""
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(model, full_check=True)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        why = one_line_reason(exc)
        raise InputError(
            f"could not export the torch module to ONNX: the exported model is invalid ({why}); {_HINT}"
        ) from exc


def write_atomically(model: onnx.ModelProto, target: Path) -> None:
    """Write to a temporary file next to ``target``, then rename over it: no partial file on any error.

    ``os.open`` with mode 0o666 (not ``mkstemp``'s 0o600) so the file gets the usual umask permissions.
    """
    tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        data = model.SerializeToString()
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except (OSError, ValueError) as exc:  # ValueError: a proto over 2 GB cannot be serialised
        raise _write_error(target, exc) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _write_error(target, exc) from exc
        raise


def _write_error(target: Path, exc: BaseException) -> InputError:
    return InputError(f"could not write the ONNX model to {target}: {exc}; check the path and free space")
