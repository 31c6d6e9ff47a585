"""A model at a concrete input size: its input dims fixed and every shape inferred again, so that costing,
latency, capture and reconstruction see integers; and the written model given its dynamic dims back.

Only the declared input dims and the inferred shapes change: nodes and constants stay as they are, so the
channel groups, the plans and the surgery are the same as on the dynamic model, and a model pruned at one
size runs at every size the original did.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import onnx

from edgeprune.errors import InputError
from edgeprune.graph.model import ModelGraph
from edgeprune.graph.shapes import (
    InputShapes,
    check_input_shape,
    format_shape,
    is_concrete,
    model_inputs,
    parse_input_shapes,
)

logger = logging.getLogger(__name__)


def fix_input_shapes(model: ModelGraph, specs: Sequence[str] | InputShapes | None) -> ModelGraph:
    """``model`` at the sizes of ``--input-shape`` specs (strings) or of a name -> dims mapping."""
    if not specs:
        return with_input_shapes(model, {})
    if isinstance(specs, Mapping):
        return with_input_shapes(model, specs)
    listed = [specs] if isinstance(specs, str) else list(specs)
    return with_input_shapes(model, parse_input_shapes(listed, model_inputs(model)))


def with_input_shapes(model: ModelGraph, shapes: InputShapes) -> ModelGraph:
    """A new model whose inputs have the given sizes (None keeps an axis: the batch stays dynamic), with its
    shapes inferred again; intermediate shapes that inference still cannot resolve (a reshape to a computed
    shape) are read from one run of the model. Returns ``model`` itself when there is nothing to fix."""
    inputs = model_inputs(model)
    for name, dims in shapes.items():
        check_input_shape(name, dims, inputs)
    changes = {
        name: dims
        for name, dims in shapes.items()
        if any(d is not None and d != old for d, old in zip(dims, inputs[name] or (None,) * len(dims)))
        or inputs[name] is None
    }
    if not changes and not _unresolved(model):
        return model
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    del proto.graph.value_info[:]
    for info in proto.graph.input:
        if info.name in changes:
            _set_dims(info, changes[info.name])
    for info in proto.graph.output:  # declared open sizes (Paddle's -1 too) are inferred again, not kept
        for dim in info.type.tensor_type.shape.dim[1:]:
            if not (dim.HasField("dim_value") and dim.dim_value > 0):
                dim.Clear()
    where = ", ".join(f"{n}={format_shape(d)}" for n, d in changes.items()) or "its declared size"
    fixed = _reinfer(proto, model, where)
    _check_sizes(fixed, where)
    missing = _unresolved(fixed)
    if missing:
        fixed = _complete_by_running(fixed, missing, where)
    return fixed


def shapes_from_calibration(model: ModelGraph, calibration) -> dict[str, tuple[int | None, ...]]:
    """The size of one calibration sample of each input, the batch axis left as the model has it: what
    `optimize` must fix before costing or capturing when the model's height and width are dynamic."""
    if not getattr(calibration, "count", 0):
        return {}
    batch = next(iter(calibration.batches(1)))
    shapes = {}
    for name in model.input_names:
        value = batch.inputs.get(name)
        if value is not None and np.ndim(value) >= 1:
            shapes[name] = (None, *(int(d) for d in np.shape(value)[1:]))
    return shapes


def restore_dynamic_dims(model: ModelGraph, like: ModelGraph | onnx.ModelProto) -> ModelGraph:
    """``model`` (pruned at a fixed size) with the declared input and output dims of ``like`` (its dynamic
    original, loaded or as the file's proto) back, so the file written runs at every size the original did.
    Surgery never changes a graph input or output (their channels are frozen), so only the declarations
    differ."""
    source = like.proto if isinstance(like, ModelGraph) else like
    inputs = {i.name: i for i in source.graph.input}
    outputs = {o.name: o for o in source.graph.output}
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    changed = False
    for infos, source in ((proto.graph.input, inputs), (proto.graph.output, outputs)):
        for info in infos:
            original = source.get(info.name)
            if original is not None and original.type != info.type:
                info.type.CopyFrom(original.type)
                changed = True
    if not changed:
        return model
    del proto.graph.value_info[:]
    return ModelGraph.from_proto(
        proto, source_sha256=model.source_sha256, source_path=model.source_path, notes=model.notes
    )


def input_shapes_of(model: ModelGraph) -> dict[str, list]:
    """Each input's size as a report records it: integers, and '?' where the model leaves it open."""
    return {name: [d if is_concrete(d) else "?" for d in (shape or ())] for name, shape in model_inputs(model).items()}


def _set_dims(info: onnx.ValueInfoProto, dims) -> None:
    shape = info.type.tensor_type.shape
    if not shape.dim:  # an input of unknown rank takes the rank given
        for _ in dims:
            shape.dim.add()
    for dim, size in zip(shape.dim, dims):
        if size is not None:
            dim.Clear()
            dim.dim_value = int(size)


def _reinfer(proto: onnx.ModelProto, model: ModelGraph, where: str) -> ModelGraph:
    try:
        return ModelGraph.from_proto(
            proto, source_sha256=model.source_sha256, source_path=model.source_path, notes=model.notes
        )
    except Exception as exc:  # onnx raises InferenceError or ValidationError, depending on the version
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise InputError(f"the model cannot take the input size {where} ({first}); give a size it accepts") from exc


def _check_sizes(model: ModelGraph, where: str) -> None:
    """A size too small for the model's strides or kernels shows as an empty or negative feature map."""
    initializers = {t.name for t in model.proto.graph.initializer}
    for node in model.proto.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "MaxPool", "AveragePool"):
            continue
        shape = model.shapes.get(node.output[0])
        if shape and node.output[0] not in initializers and any(isinstance(d, int) and d <= 0 for d in shape[2:]):
            sizes = "x".join(str(d) for d in shape)
            raise InputError(
                f"at the input size {where}, {node.op_type} {node.name} would output {sizes} "
                "(an empty feature map); give a larger size"
            )


def _unresolved(model: ModelGraph) -> list[str]:
    """Float node outputs whose shape inference leaves unknown: no shape, or a dynamic axis after the first
    (the batch). Empty while an input itself is still open: there is no size to run the model at."""
    if any(s is None or not all(is_concrete(d) for d in s[1:]) for s in model_inputs(model).values()):
        return []
    names = []
    for node in model.proto.graph.node:
        for name in node.output:
            dtype = model.dtypes.get(name) if name else None
            if not name or (dtype is not None and np.dtype(dtype).kind != "f"):
                continue
            shape = model.shapes.get(name)
            if shape is None or not all(is_concrete(d) for d in shape[1:]):
                names.append(name)
    return names


def _complete_by_running(model: ModelGraph, names: list[str], where: str) -> ModelGraph:
    """Run the model once per batch size (1, and 2 when the batch stays dynamic) and declare what the runs
    show: an axis that follows the batch keeps a symbol, every other axis gets its size."""
    inputs = model_inputs(model)
    dynamic_batch = any(s and not is_concrete(s[0]) for s in inputs.values())
    try:
        runs = [_observed(model, names, batch) for batch in ((1, 2) if dynamic_batch else (1,))]
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime's own error types: keep the inferred shapes
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        logger.warning(
            "could not run the model at %s to complete its shapes (%s); %d tensors keep unknown shapes",
            where,
            first,
            len(names),
        )
        return model
    batch_symbol = next((str(s[0]) for s in inputs.values() if s and isinstance(s[0], str)), "batch")
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    for name in names:
        shapes = [run[name].shape for run in runs]
        if len({len(s) for s in shapes}) != 1:
            continue
        dims: list[int | str] = []
        for axis, sizes in enumerate(zip(*shapes)):
            if len(set(sizes)) == 1:
                dims.append(int(sizes[0]))
            else:  # it follows the batch: the batch's own symbol when it is the batch itself
                dims.append(batch_symbol if sizes == (1, 2) else f"{batch_symbol}_{name}_{axis}")
        elem = onnx.helper.np_dtype_to_tensor_dtype(runs[0][name].dtype)
        proto.graph.value_info.append(onnx.helper.make_tensor_value_info(name, elem, dims))
    logger.info("shapes of %d tensors read from a run at %s (inference leaves them open)", len(names), where)
    return _reinfer(proto, model, where)


def _observed(model: ModelGraph, names: list[str], batch: int) -> dict[str, np.ndarray]:
    """The values of ``names`` on seeded random inputs of the model's size, with ``batch`` for a dynamic batch."""
    from edgeprune.runtime import create_session

    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    present = {o.name for o in proto.graph.output}
    for name in names:
        if name not in present:
            elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(model.dtypes.get(name, np.float32)))
            proto.graph.output.append(onnx.helper.make_tensor_value_info(name, elem, None))
    session = create_session(proto.SerializeToString(), "cpu")
    rng = np.random.default_rng(0)
    feeds = {}
    for name, shape in model_inputs(model).items():
        size = [d if isinstance(d, int) and d > 0 else batch for d in (shape or ())]
        dtype = np.dtype(model.dtypes.get(name, np.float32))
        feeds[name] = rng.standard_normal(size).astype(dtype) if dtype.kind == "f" else np.zeros(size, dtype)
    return dict(zip(names, session.run(names, feeds)))
