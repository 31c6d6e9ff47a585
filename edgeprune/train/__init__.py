"""Recovery by training on the ONNX graph itself: a torch executor, weight write-back, and distillation.

torch is an optional dependency: nothing here imports it at module level, and :func:`require_torch`
turns its absence into a one-line error that says how to install it.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "GraphModule": "edgeprune.train.executor",
    "UnsupportedOpError": "edgeprune.train.kernels.registry",
    "write_back": "edgeprune.train.writeback",
    "DistillSettings": "edgeprune.train.settings",
    "distill": "edgeprune.train.distillation",
    "RecoveryReport": "edgeprune.train.history",
}

__all__ = [*sorted(_EXPORTS), "require_torch"]


def require_torch():
    """Import torch, or raise an `InputError` saying how to install it (training is an optional extra)."""
    from edgeprune.errors import InputError

    try:
        return importlib.import_module("torch")
    except ImportError:
        raise InputError(
            "fine-tuning needs torch, which is not installed; install it with `pip install 'edgeprune[torch]'` "
            "(on a CPU-only machine `pip install torch --index-url https://download.pytorch.org/whl/cpu` first)"
        ) from None


_NEED_TORCH = {"edgeprune.train.executor", "edgeprune.train.distillation"}


def __getattr__(name: str):
    if name in _EXPORTS:
        if _EXPORTS[name] in _NEED_TORCH:
            require_torch()  # one line saying how to install it, not an ImportError from deep inside
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'edgeprune.train' has no attribute {name!r}")
