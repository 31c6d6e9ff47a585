"""Input sizes: which input dimensions are dynamic, and `--input-shape NAME=1,3,640,640` specs that fix them.

OCR, detection and segmentation exports leave height and width dynamic (`height`, `unk__0`, `s0`, Paddle's
`-1`, `?` or `p2o.DynamicDimension.0`). A MAC count, a latency table or a capture at such a size would be made
up, so every stage that needs a size calls :func:`require_concrete`, and the user states the size once.
Axis 0 is the batch: costs are per image, so a dynamic batch never blocks them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edgeprune.errors import InputError
from edgeprune.graph.model import ModelGraph, Shape

#: Per input name, the size of each axis; None keeps that axis as the model declares it (a dynamic batch).
InputShapes = Mapping[str, tuple[int | None, ...]]


@dataclass(frozen=True)
class DynamicDim:
    """One input axis whose size the model does not fix; ``symbol`` is its name as exported ('' if none)."""

    input: str
    axis: int
    symbol: str

    def to_dict(self) -> dict:
        return {"input": self.input, "axis": self.axis, "symbol": self.symbol}

    def __str__(self) -> str:
        if self.axis < 0:
            return "its rank and sizes (it declares no shape)"
        return f"axis {self.axis} ({self.symbol!r})" if self.symbol else f"axis {self.axis} (unnamed)"


def is_concrete(dim: object) -> bool:
    """A size known as a positive integer (Paddle writes unknown sizes as -1, some exporters as 0)."""
    return isinstance(dim, int) and not isinstance(dim, bool) and dim > 0


def declared_inputs(proto) -> dict[str, Shape | None]:
    """Each graph input (initializers excluded) of an ONNX proto, as exported: ints, symbols, or None."""
    initializers = {t.name for t in proto.graph.initializer}
    shapes: dict[str, Shape | None] = {}
    for info in proto.graph.input:
        if info.name in initializers:
            continue
        ttype = info.type.tensor_type
        if not ttype.HasField("shape"):
            shapes[info.name] = None
            continue
        shapes[info.name] = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in ttype.shape.dim
        )
    return shapes


def model_inputs(model: ModelGraph) -> dict[str, Shape | None]:
    """The model's inputs and their current (inferred) shapes."""
    return {name: model.shapes.get(name) for name in model.input_names}


def dynamic_dims(inputs: ModelGraph | Mapping[str, Shape | None], *, batch: bool = False) -> tuple[DynamicDim, ...]:
    """The dynamic axes of every input; axis 0 (the batch) only with ``batch``. An input of unknown rank
    counts as one dynamic dimension with axis -1."""
    shapes = model_inputs(inputs) if isinstance(inputs, ModelGraph) else inputs
    found = []
    for name, shape in shapes.items():
        if shape is None:
            found.append(DynamicDim(name, -1, "unknown rank"))
            continue
        for axis, dim in enumerate(shape):
            if (axis > 0 or batch) and not is_concrete(dim):
                found.append(DynamicDim(name, axis, "" if dim is None else str(dim)))
    return tuple(found)


def format_shape(shape: Sequence[object]) -> str:
    return ",".join(str(d) if is_concrete(d) else "?" for d in shape)


def template(name: str, shape: Shape | None) -> str:
    """A spec to fill in, e.g. ``x=1,3,H,W``: the static sizes, the batch as 1, a letter for the others."""
    if shape is None:
        return f"{name}=N,C,H,W"
    letters = iter("HWDEFGKLM")
    parts = []
    for axis, dim in enumerate(shape):
        parts.append(str(dim) if is_concrete(dim) else "1" if axis == 0 else next(letters, "S"))
    return f"{name}=" + ",".join(parts)


def describe_dynamic(inputs: ModelGraph | Mapping[str, Shape | None]) -> str:
    """What is dynamic, per input: "input 'x' leaves axis 2 ('height') and axis 3 ('width') dynamic"."""
    dims = dynamic_dims(inputs)
    clauses = []
    for name in dict.fromkeys(d.input for d in dims):
        parts = [str(d) for d in dims if d.input == name]
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        clauses.append(f"input '{name}' leaves {listed} dynamic")
    return "; ".join(clauses)


def require_concrete(model: ModelGraph | Mapping[str, Shape | None], purpose: str) -> None:
    """Raise InputError when ``purpose`` (a cost, a latency, a capture) would run at an unknown size."""
    dims = dynamic_dims(model)
    if not dims:
        return
    shapes = model_inputs(model) if isinstance(model, ModelGraph) else model
    specs = " ".join(f"--input-shape {template(n, shapes[n])}" for n in dict.fromkeys(d.input for d in dims))
    raise InputError(
        f"the model's {describe_dynamic(model)}, and {purpose} needs a concrete size; give it with {specs}"
    )


def feed_shapes(proto, specs: Sequence[str], purpose: str = "timing the model") -> dict[str, tuple[int, ...]]:
    """The size of every input of an ONNX proto to run it at: ``specs`` (``--input-shape``) for the inputs they
    name, the declared sizes for the others, a dynamic batch as 1; InputError while another size is open."""
    declared = declared_inputs(proto)
    given = parse_input_shapes(specs, declared)
    sizes: dict[str, Shape | None] = {name: given.get(name, shape) for name, shape in declared.items()}
    require_concrete(sizes, purpose)
    return {name: tuple(d if isinstance(d, int) and d > 0 else 1 for d in shape or ()) for name, shape in sizes.items()}


def parse_input_shapes(specs: Sequence[str], inputs: Mapping[str, Shape | None]) -> dict[str, tuple[int, ...]]:
    """``NAME=1,3,640,640`` specs (or bare ``1,3,640,640`` for a single-input model), checked against the
    model's inputs: a known name, the input's rank, positive integers, and the static sizes unchanged."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        name, dims = _split_spec(str(spec), inputs)
        if name in shapes:
            raise InputError(f"--input-shape gives input '{name}' twice; give each input once")
        check_input_shape(name, dims, inputs, spec=str(spec))
        shapes[name] = dims
    return shapes


def _split_spec(spec: str, inputs: Mapping[str, Shape | None]) -> tuple[str, tuple[int, ...]]:
    text = spec.strip()
    name, sep, sizes = text.rpartition("=")
    name = name.strip()
    if not sep:
        if len(inputs) != 1:
            listed = ", ".join(inputs) or "none"
            raise InputError(
                f"--input-shape {spec} names no input, but the model has {len(inputs)} inputs "
                f"({listed}); write NAME={text}"
            )
        name = next(iter(inputs))
    elif not name:
        raise InputError(f"--input-shape {spec} has an empty input name; write NAME=1,3,224,224")
    if name not in inputs:
        raise InputError(
            f"--input-shape names input '{name}', which the model does not have "
            f"(its inputs: {', '.join(inputs) or 'none'})"
        )
    dims = []
    for part in sizes.split(","):
        try:
            dims.append(int(part.strip()))
        except ValueError:
            raise InputError(
                f"--input-shape {spec}: {part.strip()!r} is not an integer; give whole sizes, "
                f"e.g. {template(name, inputs[name])}"
            ) from None
    return name, tuple(dims)


def check_input_shape(
    name: str, dims: Sequence[int | None], inputs: Mapping[str, Shape | None], *, spec: str = ""
) -> None:
    """Raise InputError unless ``dims`` (None: keep that axis) can be the size of input ``name``."""
    where = f"--input-shape {spec}" if spec else f"the size {format_shape(dims)} of input '{name}'"
    if name not in inputs:
        raise InputError(
            f"{where} names input '{name}', which the model does not have (its inputs: {', '.join(inputs) or 'none'})"
        )
    declared = inputs[name]
    if declared is not None and len(dims) != len(declared):
        raise InputError(
            f"{where} has {len(dims)} dimensions but input '{name}' has {len(declared)} "
            f"({', '.join(str(d) for d in declared)}); give all of them, e.g. {template(name, declared)}"
        )
    for axis, dim in enumerate(dims):
        if dim is None:
            continue
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise InputError(f"{where}: sizes must be positive integers, got {dim} on axis {axis}")
        fixed = declared[axis] if declared is not None else None
        if is_concrete(fixed) and fixed != dim:
            raise InputError(
                f"{where} changes axis {axis} of input '{name}' from {fixed} to {dim}; only dynamic "
                f"dimensions can be set (the model fixes this one)"
            )


def concrete_size(model: ModelGraph, tensor: str, axes: slice, purpose: str) -> tuple[int, ...]:
    """The sizes of ``tensor`` on ``axes`` as integers, or InputError: a symbolic size ('unk__0', 's1') is
    never parsed as a number. When the inputs are dynamic the error asks for `--input-shape`."""
    shape = model.shapes.get(tensor)
    dims = tuple(shape[axes]) if shape is not None else ()
    if shape is not None and dims and all(is_concrete(d) for d in dims):
        return tuple(d for d in dims if isinstance(d, int))
    require_concrete(model, purpose)
    known = format_shape(shape) if shape is not None else "no shape"
    raise InputError(
        f"the size of tensor {tensor} is unknown even at a fixed input size ({known}), and {purpose} "
        "needs it; the model computes it at run time in a way shape inference cannot follow"
    )
