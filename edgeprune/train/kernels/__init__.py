"""One torch function per ONNX op: the training executor's kernel table (see `registry`)."""

from edgeprune.train.kernels.registry import KERNELS, Kernel, UnsupportedOpError, kernel_for

__all__ = ["KERNELS", "Kernel", "UnsupportedOpError", "kernel_for"]
