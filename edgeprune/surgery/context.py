"""What op rules see while they rewrite a node during surgery."""

from __future__ import annotations

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis, TensorChannels


class SurgeryContext:
    def __init__(self, analysis: ChannelAnalysis, keep: np.ndarray, shapes, opset: int) -> None:
        self.analysis = analysis
        self.keep = keep
        self.shapes = shapes
        self.opset = opset
        self._names: set[str] = set()

    def kept(self, tensor) -> np.ndarray | None:
        """Bool per channel position of ``tensor``; None when untracked or when nothing is removed."""
        mask = self.analysis.kept_positions(tensor.name, self.keep)
        return None if mask is None or mask.all() else mask

    def analysis_track(self, tensor) -> TensorChannels:
        return self.analysis.tensors[tensor.name]

    def rank(self, tensor) -> int:
        values = self.constant(tensor)
        return values.ndim if values is not None else len(self.shapes[tensor.name])

    @staticmethod
    def constant(tensor) -> np.ndarray | None:
        import onnx_graphsurgeon as gs

        return np.asarray(tensor.values) if isinstance(tensor, gs.Constant) else None

    def set_constant(self, node, input_index: int, values: np.ndarray) -> None:
        """Give ``node`` a new constant input: shared initializers are never edited in place."""
        import onnx_graphsurgeon as gs

        base = f"{node.name}.in{input_index}.pruned"
        name, suffix = base, 1
        while name in self._names:
            suffix += 1
            name = f"{base}{suffix}"
        self._names.add(name)
        constant = gs.Constant(name, np.ascontiguousarray(values))
        while len(node.inputs) <= input_index:
            node.inputs.append(gs.Variable.empty())
        node.inputs[input_index] = constant
