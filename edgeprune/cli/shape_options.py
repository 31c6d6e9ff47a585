"""`--input-shape`, shared by every command that costs or times a model (inspect, plan, prune, bench, profile)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])

HELP = (
    "Fix a dynamic input's size for costing and timing, e.g. x=1,3,640,640 (repeat it per input; the name "
    "may be left out when the model has one input). Needed when the model leaves height or width dynamic."
)


def input_shape_option(command: F) -> F:
    """Add ``--input-shape`` (repeatable) to a command; it receives ``input_shapes``, a tuple of the raw specs.

    The library parses them against the model's inputs, so a bad one (an unknown input, the wrong rank, a
    static size changed, a size that is not a positive integer) is one InputError line and exit code 2."""
    return click.option("--input-shape", "input_shapes", multiple=True, metavar="[NAME=]N,C,H,W", help=HELP)(command)
