"""`GraphModule`: a `ModelGraph` run op by op as a differentiable torch module.

Every float initializer that an op reads as data (weights, biases, per-channel constants, layer scales)
becomes an ``nn.Parameter``; those read only as shapes, axes, pads or scales stay constants. Parameters
keep their ONNX names (:meth:`GraphModule.onnx_parameters`), so training can write the new values back
into the same initializers of the same graph (`edgeprune.train.writeback`): the topology never changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from edgeprune.graph import ModelGraph
from edgeprune.train.kernels.registry import Kernel, NodeSpec, UnsupportedOpError, kernel_for


@dataclass(frozen=True)
class _Step:
    spec: NodeSpec
    kernel: Kernel
    inputs: tuple[str, ...]  # "" for an omitted optional input
    outputs: tuple[str, ...]


class GraphModule(nn.Module):
    """Runs ``model``'s graph in torch. ``forward`` takes the model inputs (positionally, in graph order, or
    as a mapping by name) and returns the graph outputs as a tuple, in graph order."""

    def __init__(self, model: ModelGraph, *, conv_batchnorm: bool = False) -> None:
        """``conv_batchnorm``: put an identity BatchNorm after every conv with its own weight and bias
        parameters (see `edgeprune.train.batchnorm`); :meth:`onnx_parameters` then folds them back."""
        super().__init__()
        graph = model.proto.graph
        self.input_names = model.input_names
        self.output_names = model.output_names
        self._steps = tuple(_step(node, model.opset) for node in graph.node)
        trainable = _trainable_initializers(graph, self._steps)
        self._parameters_by_onnx_name: dict[str, nn.Parameter] = {}
        self.weights = nn.ParameterList()
        self._constant_buffers: dict[str, str] = {}  # ONNX name -> buffer attribute (buffers follow .to())
        for init in graph.initializer:
            array = numpy_helper.to_array(init)
            if init.name in trainable:
                parameter = nn.Parameter(torch.from_numpy(np.array(array, copy=True)))
                self.weights.append(parameter)
                self._parameters_by_onnx_name[init.name] = parameter
            else:
                attribute = f"const_{len(self._constant_buffers)}"
                self.register_buffer(attribute, torch.from_numpy(np.array(array, copy=True)))
                self._constant_buffers[init.name] = attribute
        self._last_use = _last_uses(self._steps, self.output_names)
        self.norms = nn.ModuleDict(_conv_norms(self._steps, self._parameters_by_onnx_name) if conv_batchnorm else {})

    def onnx_parameters(self) -> Mapping[str, torch.Tensor]:
        """The trainable parameters by their ONNX initializer names (with any training BatchNorm folded in:
        the values the graph's initializers must hold to compute what this module computes in eval mode)."""
        from edgeprune.train.batchnorm import fold

        values: dict[str, torch.Tensor] = dict(self._parameters_by_onnx_name)
        for index, norm in self.norms.items():
            step = self._steps[int(index)]
            weight, bias = step.inputs[1], step.inputs[2]
            values[weight], values[bias] = fold(values[weight], values[bias], norm)
        return values

    def forward(self, *args, extra_outputs: Iterable[str] = ()):
        feeds = args[0] if len(args) == 1 and isinstance(args[0], Mapping) else dict(zip(self.input_names, args))
        missing = [name for name in self.input_names if name not in feeds]
        if missing:
            raise ValueError(f"missing model inputs: {', '.join(missing)}")
        extra = tuple(extra_outputs)
        keep = set(self.output_names) | set(extra)
        env: dict[str, torch.Tensor] = {name: feeds[name] for name in self.input_names}
        env.update(self._live_constants())
        for index, step in enumerate(self._steps):
            inputs = [env[name] if name else None for name in step.inputs]
            outputs = step.kernel.fn(step.spec, inputs)
            norm = self.norms[str(index)] if str(index) in self.norms else None
            if norm is not None:
                outputs = [norm(outputs[0])]
            for name, value in zip(step.outputs, outputs):
                if name:
                    env[name] = value
            for name in self._last_use.get(index, ()):
                if name not in keep:
                    env.pop(name, None)  # free activations no later node reads (autograd keeps what it needs)
        result = tuple(env[name] for name in self.output_names)
        if extra:
            return result, {name: env[name] for name in extra}
        return result

    def _live_constants(self) -> dict[str, torch.Tensor]:
        live = {name: getattr(self, attribute) for name, attribute in self._constant_buffers.items()}
        live.update(self._parameters_by_onnx_name)
        return live


def _conv_norms(steps: tuple[_Step, ...], parameters: Mapping[str, nn.Parameter]) -> dict[str, nn.Module]:
    """An identity BatchNorm per Conv whose weight and bias are parameters no other node reads."""
    from edgeprune.train.batchnorm import identity_norm

    readers: dict[str, int] = {}
    for step in steps:
        for name in step.inputs:
            readers[name] = readers.get(name, 0) + 1
    norms: dict[str, nn.Module] = {}
    for index, step in enumerate(steps):
        if step.spec.op != "Conv" or len(step.inputs) < 3:
            continue
        weight, bias = step.inputs[1], step.inputs[2]
        if weight in parameters and bias in parameters and readers[weight] == readers[bias] == 1:
            w = parameters[weight]
            norms[str(index)] = identity_norm(w.shape[0], w.dim() - 2, w.dtype)
    return norms


def _step(node: onnx.NodeProto, opset: int) -> _Step:
    attrs = {a.name: _attribute(a) for a in node.attribute}
    attrs["_outputs"] = len(node.output)
    spec = NodeSpec(node.name or node.op_type, node.op_type, attrs, opset)
    return _Step(spec, kernel_for(spec, node.domain or ""), tuple(node.input), tuple(node.output))


def _attribute(attribute: onnx.AttributeProto):
    value = onnx.helper.get_attribute_value(attribute)
    if isinstance(value, onnx.TensorProto):
        return torch.from_numpy(np.array(numpy_helper.to_array(value), copy=True))
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    if isinstance(value, onnx.GraphProto):
        raise UnsupportedOpError(
            f"node '{attribute.name}' holds a subgraph; the training executor runs flat graphs only"
        )
    return value


def _trainable_initializers(graph: onnx.GraphProto, steps: tuple[_Step, ...]) -> set[str]:
    """Float initializers read by some op at a data position (not only as a shape, axis, pad or scale)."""
    floats = {
        init.name for init in graph.initializer if onnx.helper.tensor_dtype_to_np_dtype(init.data_type).kind == "f"
    }
    trainable = set()
    for step in steps:
        for position, name in enumerate(step.inputs):
            if name in floats and position not in step.kernel.static:
                trainable.add(name)
    return trainable


def _last_uses(steps: tuple[_Step, ...], outputs: tuple[str, ...]) -> dict[int, tuple[str, ...]]:
    """For each step, the tensors it is the last reader of (so the forward pass can drop them after it)."""
    last: dict[str, int] = {}
    for index, step in enumerate(steps):
        for name in step.inputs:
            if name:
                last[name] = index
    by_step: dict[int, list[str]] = {}
    for name, index in last.items():
        if name not in outputs:
            by_step.setdefault(index, []).append(name)
    return {index: tuple(names) for index, names in by_step.items()}


def check_trainable(model: ModelGraph) -> None:
    """Raise `UnsupportedOpError` naming the first node the executor cannot run (without building it)."""
    for node in model.proto.graph.node:
        _step(node, model.opset)
