"""The batch size a model takes: exports with a fixed batch dimension take batches of exactly that size."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def batch_size_for(model, requested: int) -> int:
    """A model exported with a fixed batch dimension can only take batches of exactly that size."""
    fixed = {model.shapes[name][0] for name in model.input_names if model.shapes.get(name)}
    fixed = {d for d in fixed if isinstance(d, int) and d > 0}
    if len(fixed) == 1:
        size = fixed.pop()
        if size != requested:
            logger.info("the model's batch dimension is fixed at %d: using batches of %d", size, size)
        return size
    return requested
