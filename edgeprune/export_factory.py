"""A torch model named by ``module:factory`` to an ONNX file that is checked against torch before it is written.

The library half of `edgeprune export`. The model comes from calling the factory (or is the module attribute
itself when that already is an ``nn.Module``), is exported in eval mode by
:func:`edgeprune.export.export_torch_model`, and the exported graph is run in ONNX Runtime on a seeded random
input against torch. Only a model that computes what the torch model computes reaches the disk, atomically:
every failure, a Ctrl-C included, leaves no file (and an existing file at the output path untouched).

torch is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeprune.errors import InputError, VerificationError
from edgeprune.export import (
    default_opset,
    export_torch_model,
    flatten_outputs,
    has_batch_dim,
    one_line_reason,
    write_atomically,
)

if TYPE_CHECKING:
    import numpy as np
    import onnx
    import torch

log = logging.getLogger(__name__)

EXPORTERS = ("legacy", "dynamo")
DEFAULT_TOLERANCE = 1e-4
_SHAPE_HELP = "give the shape of one input batch as comma-separated positive integers, e.g. 1,3,224,224"
_FIT_HELP = "give the shape the model's forward takes, e.g. 1,3,224,224 for a batch of one 224x224 RGB image"
# What to try when the file does not reproduce torch: tracing can bake a batch size into the graph.
_RETRY = "try the other exporter, another opset, or a static batch"


@dataclass(frozen=True)
class ExportResult:
    """What was written and how closely ONNX Runtime reproduced torch on it.

    ``max_rel_diff`` is the largest absolute difference between an ONNX Runtime output and the torch output,
    relative to that output's largest magnitude, over all outputs and every checked batch size.
    """

    path: Path
    exporter: str
    opset: int  # the file's default-domain opset (the dynamo exporter may write 18 whatever was asked)
    dynamic_batch: bool  # dim 0 of the inputs is symbolic in the file
    input_shape: tuple[int, ...]
    checked_batches: tuple[int, ...]
    max_rel_diff: float
    tolerance: float


def export_factory(
    spec: str,
    input_shape: str | Sequence[int],
    output: str | os.PathLike[str],
    *,
    opset: int = 17,
    exporter: str = "legacy",
    dynamic_batch: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
) -> ExportResult:
    """Build the model ``spec`` names, export it to ``output`` and prove the file against torch.

    With a dynamic batch the file is checked at the given batch size and at one more, so a model that bakes
    its batch size into a reshape is caught instead of shipped. Raises ``InputError`` for anything wrong with
    what was given, ``VerificationError`` when ONNX Runtime's outputs differ from torch's by more than
    ``tolerance``.
    """
    shape = parse_input_shape(input_shape)
    target = check_output_path(output)
    if exporter not in EXPORTERS:
        raise InputError(f"unknown exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    if tolerance < 0:
        raise InputError(f"the tolerance must be at least 0, not {tolerance:g}")
    torch = _require_torch(exporter)
    module = load_factory_model(spec)
    module.eval()
    example = _random_input(torch, shape, seed)
    expected = _forward(torch, module, example, f"input shape {_text(shape)} does not fit the model", _FIT_HELP)
    checks = [(shape[0], example, expected)]
    if dynamic_batch:  # before exporting: a model that cannot run at another batch fails fast
        checks.append(_second_batch(torch, module, shape, seed))
    model = export_torch_model(
        module,
        (example,),
        exporter=exporter,  # type: ignore[arg-type]  # checked against the two exporters above
        opset=opset,
        dynamic_batch=dynamic_batch,
    )
    dynamic = all(has_batch_dim(value) for value in model.graph.input)
    checks = checks if dynamic else checks[:1]  # the dynamo exporter may have fallen back to a static batch
    worst = 0.0
    for batch, inputs, reference in checks:
        diff = _max_rel_diff(model, inputs.numpy(), reference)
        worst = max(worst, diff)
        if not diff <= tolerance:  # a NaN difference fails too
            raise VerificationError(
                f"the exported model does not compute what the torch model computes: max relative difference "
                f"{diff:.3g} at batch {batch} (tolerance {tolerance:g}); nothing was written; {_RETRY}"
            )
    write_atomically(model, target)
    file_opset = default_opset(model) or opset
    log.info("exported %s with the %s exporter; max relative difference %.3g", spec, exporter, worst)
    return ExportResult(target, exporter, file_opset, dynamic, shape, tuple(b for b, _, _ in checks), worst, tolerance)


def parse_input_shape(shape: str | Sequence[int]) -> tuple[int, ...]:
    """``"1,3,224,224"`` (or a sequence of ints) as a tuple of positive ints, or an ``InputError``."""
    parts = shape.split(",") if isinstance(shape, str) else list(shape)
    try:
        dims = tuple(int(str(part).strip()) for part in parts)
    except ValueError:
        dims = ()
    if not dims or any(d <= 0 for d in dims):
        raise InputError(f"input shape {_quoted(shape)} is not valid; {_SHAPE_HELP}")
    return dims


def check_output_path(output: str | os.PathLike[str]) -> Path:
    """Refuse up front an output path that cannot be written, before any time is spent exporting."""
    target = Path(output)
    if target.is_dir():
        raise InputError(f"the output path {target} is a folder; give a file path such as {target / 'model.onnx'}")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:  # missing folders are created when writing
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"cannot write {target}: {folder} is not a folder; choose another output path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {target}: no permission to write in {folder}; choose another output path")
    return target


def load_factory_model(spec: str) -> torch.nn.Module:
    """Import ``module:attribute`` (the current folder first on the path), call it, and check it is a module."""
    import torch

    module_name, _, attribute = spec.partition(":")
    if not module_name.strip() or not attribute.strip():
        raise InputError(f"'{spec}' is not MODULE:FACTORY; write e.g. mymodels:build (a function in mymodels.py)")
    with _current_folder_importable():
        target = _resolve(_import(module_name), module_name, attribute)
        if isinstance(target, torch.nn.Module):
            return target
        if not callable(target):
            raise InputError(
                f"{spec} is not callable (its type is {type(target).__name__}); name a function or "
                f"class that returns a torch.nn.Module, or an nn.Module instance"
            )
        try:
            built = target()
        except Exception as exc:  # anything the user's code raises; Ctrl-C still stops the run
            raise InputError(
                f"the factory {spec} raised {_describe(exc)}; it is called with no arguments and must "
                f"return a torch.nn.Module"
            ) from exc
    if not isinstance(built, torch.nn.Module):
        raise InputError(f"the factory {spec} returned a {type(built).__name__}, not a torch.nn.Module")
    return built


@contextlib.contextmanager
def _current_folder_importable() -> Iterator[None]:
    """The current folder first on ``sys.path`` while the factory is imported and called, as ``python -m`` has."""
    folder = os.getcwd()
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    importlib.invalidate_caches()  # a module written after the last import of this process is found too
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as exc:  # ModuleNotFoundError, a SyntaxError, or whatever the module raises on import
        hint = " (searched the current folder and the Python path)" if isinstance(exc, ImportError) else ""
        raise InputError(f"could not import module '{name}': {_describe(exc)}{hint}") from exc


def _resolve(module: Any, module_name: str, attribute: str) -> Any:
    """``module.a.b`` for ``attribute`` ``a.b``; a missing name suggests the closest ones."""
    target = module
    for depth, part in enumerate(attribute.split(".")):
        if not hasattr(target, part):
            owner = module_name if depth == 0 else f"{module_name}:{'.'.join(attribute.split('.')[:depth])}"
            close = difflib.get_close_matches(part, [n for n in dir(target) if not n.startswith("_")], n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise InputError(f"module '{owner}' has no attribute '{part}'{hint}")
        target = getattr(target, part)
    return target


def _require_torch(exporter: str) -> Any:
    try:
        import torch
    except ImportError:
        raise InputError(
            "exporting needs torch, which is not installed; install it with `pip install 'edgeprune[torch]'`"
        ) from None
    if exporter == "dynamo" and importlib.util.find_spec("onnxscript") is None:
        raise InputError(
            "the dynamo exporter needs onnxscript, which is not installed; install it with "
            "`pip install onnxscript`, or use the legacy exporter"
        )
    return torch


def _random_input(torch: Any, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator)


def _forward(torch: Any, module: torch.nn.Module, example: torch.Tensor, what: str, hint: str) -> list[np.ndarray]:
    """The module's outputs on ``example`` as arrays; a forward error is an ``InputError``: what, why, hint."""
    try:
        with torch.no_grad():
            leaves = flatten_outputs(module(example))
    except Exception as exc:  # a shape mismatch surfaces as RuntimeError, TypeError, ValueError, IndexError...
        raise InputError(f"{what}: {_describe(exc)}; {hint}") from exc
    if not all(isinstance(leaf, torch.Tensor) for leaf in leaves):
        kinds = sorted({type(leaf).__name__ for leaf in leaves if not isinstance(leaf, torch.Tensor)})
        raise InputError(f"the model returns {', '.join(kinds)} besides tensors; ONNX outputs must be tensors")
    return [leaf.detach().numpy() for leaf in leaves]


def _second_batch(torch: Any, module: torch.nn.Module, shape: tuple[int, ...], seed: int):
    """(batch, input, torch outputs) at one more than the given batch: what a dynamic batch promises."""
    batch = shape[0] + 1
    example = _random_input(torch, (batch, *shape[1:]), seed + 1)
    what = f"the model runs at batch {shape[0]} but not at batch {batch}"
    hint = "its batch size cannot be dynamic: export it with a static batch"
    return batch, example, _forward(torch, module, example, what, hint)


def _max_rel_diff(model: onnx.ModelProto, inputs: np.ndarray, expected: list[np.ndarray]) -> float:
    """Run the exported model in ONNX Runtime; a run that fails or gives other shapes is a failed check."""
    from edgeprune.runtime import create_session
    from edgeprune.surgery.verify import compare_outputs

    batch = inputs.shape[0]
    session = create_session(model.SerializeToString(), "cpu")
    try:
        got = session.run(None, {session.get_inputs()[0].name: inputs})
    except Exception as exc:  # e.g. a batch size baked into a Reshape by tracing
        raise VerificationError(
            f"ONNX Runtime could not run the exported model at batch {batch} "
            f"({_describe(exc)}); nothing was written; {_RETRY}"
        ) from exc
    shapes = [tuple(a.shape) for a in got], [tuple(a.shape) for a in expected]
    if shapes[0] != shapes[1]:
        raise VerificationError(
            f"the exported model's outputs have shapes {shapes[0]} at batch {batch} where "
            f"torch's have {shapes[1]}; nothing was written; {_RETRY}"
        )
    names = [str(i) for i in range(len(got))]
    return compare_outputs(dict(zip(names, expected)), dict(zip(names, got))).max_rel


def _describe(exc: BaseException) -> str:
    """``ValueError: width must be even``: the exception's type and its first line."""
    name = type(exc).__name__
    text = one_line_reason(exc)
    return text if text == name or text.startswith(f"{name}:") else f"{name}: {text}"


def _text(shape: tuple[int, ...]) -> str:
    return ",".join(str(d) for d in shape)


def _quoted(shape: str | Sequence[int]) -> str:
    return f"'{shape}'" if isinstance(shape, str) else f"'{','.join(str(d) for d in shape)}'"
