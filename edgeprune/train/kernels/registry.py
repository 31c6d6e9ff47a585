"""The executor's kernel table: for each ONNX op, a torch function and which of its inputs are static.

A kernel is called as ``fn(node, inputs)`` with ``node`` a `NodeSpec` (op, name, attributes, opset) and
``inputs`` a list of torch tensors (``None`` for an omitted optional input); it returns a list of tensors.
``static`` names the input positions that hold shapes, axes, pads or scales: a float initializer used
only there stays a constant and never becomes a trainable parameter.
An op with no kernel is refused when the executor is built, naming the node: never a silent wrong gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from edgeprune.errors import InputError

KERNELS: dict[str, Kernel] = {}


class UnsupportedOpError(InputError):
    """The graph holds an op (or an attribute value) the training executor does not implement."""


@dataclass(frozen=True)
class NodeSpec:
    """What a kernel needs of one ONNX node, parsed once when the executor is built."""

    name: str
    op: str
    attrs: Mapping[str, object]
    opset: int

    def attr(self, key: str, default=None):
        return self.attrs.get(key, default)

    def refuse(self, why: str) -> UnsupportedOpError:
        return UnsupportedOpError(
            f"node '{self.name}' ({self.op}): {why}; the training executor cannot run it, so this model cannot be "
            "fine-tuned (prune and reconstruct without --finetune, or fine-tune it in its framework with plan.json's index map)"
        )


@dataclass(frozen=True)
class Kernel:
    fn: Callable
    static: frozenset[int] = field(default_factory=frozenset)  # input positions that are shapes, axes, pads...
    check: Callable | None = None  # called with the NodeSpec when the executor is built; raises if unsupported


def kernel(*ops: str, static: tuple[int, ...] | range = (), check: Callable | None = None):
    """Register ``fn`` as the kernel of ``ops`` (each op at most once)."""

    def register(fn: Callable) -> Callable:
        for op in ops:
            if op in KERNELS:
                raise ValueError(f"two training kernels for {op}")
            KERNELS[op] = Kernel(fn, frozenset(static), check)
        return fn

    return register


def kernel_for(node: NodeSpec, domain: str = "") -> Kernel:
    """The kernel of ``node``, or an `UnsupportedOpError` naming the node and its op."""
    _load_kernels()
    found = KERNELS.get(node.op) if domain in ("", "ai.onnx") else None
    if found is None:
        where = f"op {domain}::{node.op}" if domain not in ("", "ai.onnx") else "this op"
        raise node.refuse(f"{where} has no training kernel")
    if found.check is not None:
        found.check(node)
    return found


def _load_kernels() -> None:
    # importing the kernel modules registers them; done lazily so the table has no import cycle
    from edgeprune.train.kernels import conv, elementwise, norm, pooling, resize, shape  # noqa: F401
