"""An ONNX graph run node by node in torch (the training executor's kernels, no gradients), with a hook that
may replace a node's weight inputs just before it runs: what `SequentialEvaluator` refits layers with.

ONNX Runtime runs a whole graph at once, so refitting layer after layer there would cost one run per layer;
here one pass does it, since the hook sees each layer's actual input when the pass reaches it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from edgeprune.graph.model import ModelGraph
from edgeprune.train.kernels.registry import Kernel, NodeSpec, kernel_for

# hook(node name, its inputs, peek) -> None, or replacements {(node name, input index): tensor} for this node
# and later ones (a MatMul's bias lives in the Add after it); peek(tensor) reads a tensor not computed yet
Hook = Callable[[str, list, Callable[[str], torch.Tensor]], "Mapping[tuple[str, int], torch.Tensor] | None"]


@dataclass(frozen=True)
class _Step:
    name: str
    spec: NodeSpec
    kernel: Kernel
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class TorchGraph:
    def __init__(self, model: ModelGraph) -> None:
        graph = model.proto.graph
        self.steps = tuple(
            _Step(node.name, spec, kernel_for(spec, node.domain or ""), tuple(node.input), tuple(node.output))
            for node in graph.node
            for spec in [NodeSpec(node.name or node.op_type, node.op_type, _attributes(node), model.opset)]
        )
        self.constants = {
            t.name: torch.from_numpy(np.array(numpy_helper.to_array(t), copy=True)) for t in graph.initializer
        }
        self.output_names = tuple(model.output_names)
        last: dict[str, int] = {}
        for index, step in enumerate(self.steps):
            for name in step.inputs:
                if name:
                    last[name] = index
        self._frees: dict[int, list[str]] = {}
        for name, index in last.items():
            self._frees.setdefault(index, []).append(name)

    def run(
        self,
        feeds: Mapping[str, torch.Tensor],
        names: Iterable[str] = (),
        refit: Hook | None = None,
        compute: Callable[[_Step, list], list | None] | None = None,
    ):
        """The tensors ``names`` (and the graph outputs) after one pass over ``feeds``. ``compute(step,
        inputs)`` may compute a node's outputs itself (None: the kernel does)."""
        keep = set(names) | set(self.output_names)
        env: dict[str, torch.Tensor] = {**self.constants, **feeds}
        replaced: dict[tuple[str, int], torch.Tensor] = {}
        with torch.no_grad():
            for index, step in enumerate(self.steps):
                inputs = self._inputs(step, env, replaced)
                if refit is not None:

                    def peek(name: str, start: int = index + 1) -> torch.Tensor:
                        return self._peek(name, start, env, replaced)

                    found = refit(step.name, inputs, peek)
                    if found:
                        replaced.update(found)
                        inputs = self._inputs(step, env, replaced)
                outputs = compute(step, inputs) if compute is not None else None
                for name, value in zip(step.outputs, outputs or step.kernel.fn(step.spec, inputs)):
                    if name:
                        env[name] = value
                for name in self._frees.get(index, ()):
                    if name not in keep and name not in self.constants:
                        env.pop(name, None)
        return {name: env[name] for name in keep}

    def _inputs(self, step: _Step, env, replaced) -> list:
        inputs = [env[name] if name else None for name in step.inputs]
        for (node, position), value in replaced.items():
            if node == step.name:
                while len(inputs) <= position:
                    inputs.append(None)
                inputs[position] = value
        return inputs

    def _peek(self, name: str, start: int, env, replaced) -> torch.Tensor:
        """``name`` as the graph computes it from here with the replacements so far and no new ones."""
        if name in env:
            return env[name]
        scratch = dict(env)
        for step in self.steps[start:]:
            for output, value in zip(step.outputs, step.kernel.fn(step.spec, self._inputs(step, scratch, replaced))):
                if output:
                    scratch[output] = value
            if name in scratch:
                return scratch[name]
        raise KeyError(f"tensor {name} is not computed by this graph")


def _attributes(node: onnx.NodeProto) -> dict:
    attrs: dict = {"_outputs": len(node.output)}
    for attribute in node.attribute:
        value = onnx.helper.get_attribute_value(attribute)
        if isinstance(value, onnx.TensorProto):
            value = torch.from_numpy(np.array(numpy_helper.to_array(value), copy=True))
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode() for v in value]
        attrs[attribute.name] = value
    return attrs
