"""The architecture registry: a name -> builder table filled by a decorator.

Kept apart from ``__init__`` so the family modules can register themselves without importing the package
that imports them (no circular import).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from torch import nn

Shape = tuple[int, ...]
# An architecture's per-sample input shapes (no batch dimension): fixed, or computed from the builder's kwargs
# (``resnet20(in_channels=3)`` takes 3x28x28 images).
ShapeSpec = Sequence[Shape] | Callable[..., Sequence[Shape]]
Builder = TypeVar("Builder", bound=Callable[..., nn.Module])

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}
INPUT_SHAPES: dict[str, ShapeSpec] = {}


def register_architecture(name: str, *, input_shapes: ShapeSpec) -> Callable[[Builder], Builder]:
    """Register ``builder`` under ``name`` with the shapes of the inputs it expects.

    The shapes live next to the builder so that tests and the exporter can make example inputs for any
    architecture without knowing it.
    """

    def decorate(builder: Builder) -> Builder:
        if name in ARCHITECTURES:
            raise ValueError(f"architecture {name!r} is registered twice")
        ARCHITECTURES[name] = builder
        INPUT_SHAPES[name] = input_shapes
        return builder

    return decorate
