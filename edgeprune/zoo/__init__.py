"""Small CNN architectures as torch modules: the real-topology corpus that edgeprune is tested on.

Each family module registers its builders with ``@register_architecture``; importing this package imports
them all (and torch). Nothing else in edgeprune imports the zoo at import time, so torch stays optional for
the ONNX-only paths.

``build(name, seed=...)`` is deterministic: the same name, seed and kwargs give bit-identical weights, with
every BatchNorm in eval mode and carrying non-trivial statistics.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeprune.errors import InputError

# Imported for their registrations only.
from edgeprune.zoo import (  # noqa: F401, E402
    convnext,
    densenet,
    heads,
    mobilenet,
    mobilenet_v3,
    resnet,
    resnext,
    shufflenet,
    unet,
    vgg,
    yolox,
)
from edgeprune.zoo._blocks import randomize_parameters
from edgeprune.zoo._registry import ARCHITECTURES, INPUT_SHAPES, register_architecture

__all__ = ["ARCHITECTURES", "INPUT_SHAPES", "build", "example_inputs", "input_shapes", "register_architecture"]


def _lookup(name: str) -> None:
    if name not in ARCHITECTURES:
        valid = ", ".join(sorted(ARCHITECTURES))
        raise InputError(f"unknown architecture {name!r}; choose one of: {valid}")


def build(name: str, *, seed: int = 0, **kwargs: object) -> nn.Module:
    """Build architecture ``name`` in eval mode with weights drawn from ``seed``.

    Construction runs under a forked global RNG so that building a model neither depends on nor disturbs
    the caller's random state.
    """
    _lookup(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ARCHITECTURES[name](**kwargs)
    randomize_parameters(model, seed)
    return model


def input_shapes(name: str, **kwargs: object) -> tuple[tuple[int, ...], ...]:
    """The per-sample input shapes (no batch dimension) of ``build(name, **kwargs)``."""
    _lookup(name)
    spec = INPUT_SHAPES[name]
    shapes = spec(**kwargs) if callable(spec) else spec
    return tuple(tuple(shape) for shape in shapes)


def example_inputs(name: str, batch: int = 2, *, seed: int = 0, **kwargs: object) -> tuple[torch.Tensor, ...]:
    """Seeded standard-normal inputs of the right shapes for ``build(name, **kwargs)``, one per model input."""
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn((batch, *shape), generator=gen) for shape in input_shapes(name, **kwargs))
