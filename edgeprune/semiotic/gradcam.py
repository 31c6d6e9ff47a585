"""Grad-CAM saliency from a TorchScript copy of the model, for the superization curve.

ONNX Runtime gives no gradients, so Grad-CAM needs the model in torch. A loaded TorchScript module takes no
forward hooks; instead the module is frozen (submodules inlined, BatchNorm folded into the convs, as in the
ONNX export) and its graph is copied with every convolution's output appended to the returned values. One
run then gives the logits and every conv map A^k with autograd attached, and

    Grad-CAM_k = ReLU( sum_c alpha_c A^k_c ),  alpha_c = mean over sites of d y_top / d A^k_c,

with y_top the logit of the model's own top class (no labels needed). Limits: only convolutions on the
graph's top level are seen (one inside a scripted loop or branch is not); the model must take one input;
the torch model's convs, in the order they run, are named after the ONNX model's Conv nodes in topological
order, so both must have the same convs in the same order (checked by count), and the two must compute the
same outputs (checked on the first batch).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeprune.errors import InputError
from edgeprune.graph.model import ModelGraph
from edgeprune.runtime import create_session
from edgeprune.semiotic.curve import CurveAccumulator, SuperizationCurve
from edgeprune.semiotic.layers import SaliencyLayer

logger = logging.getLogger(__name__)

_CONV_KINDS = ("aten::conv2d", "aten::_convolution", "aten::convolution")
AGREEMENT = 1e-3  # largest relative difference between the torch and ONNX outputs on the first batch


def load_torchscript(path: Path):
    """The module at ``path`` frozen for inference, and a function returning (logits, [conv maps])."""
    try:
        import torch
    except ImportError:
        raise InputError("--torch-model needs torch (`pip install torch`)") from None
    path = Path(path)
    if not path.is_file():
        raise InputError(f"TorchScript model not found: {path}")
    try:
        module = torch.jit.freeze(torch.jit.load(str(path), map_location="cpu").eval())
    except Exception as exc:  # torch raises RuntimeError or pickle errors for a file it cannot read
        raise InputError(f"{path} is not a TorchScript model torch.jit.load can read ({str(exc).splitlines()[0]}); "
                         "save one with torch.jit.script(model).save(path) or torch.jit.trace") from None
    graph = module.graph.copy()
    convs = [node.output() for node in graph.nodes() if node.kind() in _CONV_KINDS]
    if not convs:
        raise InputError(f"{path} has no convolution on its graph's top level for Grad-CAM")
    returned = list(graph.outputs())
    node = graph.create("prim::TupleConstruct", returned + convs, 1)
    node.insertBefore(graph.return_node())
    node.output().setType(torch._C.TupleType([v.type() for v in returned + convs]))
    graph.eraseOutput(0)
    graph.registerOutput(node.output())
    function = torch._C._create_function_from_graph("gradcam_forward", graph)
    takes_self = len(list(graph.inputs())) == 2

    def forward(x):
        result = function(module._c, x) if takes_self else function(x)
        return result[0], list(result[1:])

    return forward, len(convs)


def gradcam_maps(logits, maps) -> list[np.ndarray]:
    """Grad-CAM (N, 1, H, W) of every conv map for the top class of each image."""
    import torch

    top = logits.argmax(dim=1, keepdim=True)
    grads = torch.autograd.grad(logits.gather(1, top).sum(), maps, allow_unused=True)
    result = []
    for acts, grad in zip(maps, grads):
        if grad is None:  # a conv the logits do not depend on: no evidence, a dead map
            result.append(np.zeros((acts.shape[0], 1, *acts.shape[2:]), dtype=np.float32))
            continue
        alpha = grad.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((alpha * acts).sum(dim=1, keepdim=True))
        result.append(cam.detach().numpy())
    return result


def onnx_conv_names(model: ModelGraph) -> list[str]:
    return [node.name for node in model.proto.graph.node if node.op_type == "Conv"]


def measure_gradcam_curve(model: ModelGraph, calibration, torch_model: Path, *, levels: int | None = None,
                          batch_size: int = 64, progress: Callable[[int, int], None] | None = None) -> SuperizationCurve:
    """The curve of Grad-CAM maps, one layer per conv of the ONNX model (names from it, maps from torch)."""
    import torch

    if len(model.input_names) != 1:
        raise InputError("--torch-model works for models with one input only")
    forward, count = load_torchscript(torch_model)
    names = onnx_conv_names(model)
    if count != len(names):
        raise InputError(f"{torch_model} runs {count} convolutions and {model.source_path or 'the ONNX model'} "
                         f"has {len(names)}; give the TorchScript export of the same model")
    layers = [SaliencyLayer(name, name, (), 0) for name in names]
    accumulator = CurveAccumulator(layers, levels)
    session = create_session(model.serialized(), "cpu")
    done, checked = 0, False
    for batch in calibration.batches(batch_size):
        x = torch.from_numpy(np.ascontiguousarray(batch.inputs[model.input_names[0]])).requires_grad_(True)
        with torch.enable_grad():
            logits, maps = forward(x)
            if not checked:
                _check_agreement(session, batch.inputs, logits.detach().numpy(), torch_model)
                checked = True
            cams = gradcam_maps(logits, maps)
        accumulator.update({name: cam for name, cam in zip(names, cams)})
        done += len(batch)
        if progress:
            progress(done, calibration.count)
    return _with_channels(accumulator.curve("grad-cam"), model)


def _check_agreement(session, inputs, torch_logits: np.ndarray, path: Path) -> None:
    reference = session.run(None, inputs)[0]
    if reference.shape != torch_logits.shape:
        raise InputError(f"{path} returns shape {torch_logits.shape}, the ONNX model {reference.shape}; "
                         "give the TorchScript export of the same model")
    scale = max(float(np.abs(reference).max()), 1e-12)
    diff = float(np.abs(reference - torch_logits).max()) / scale
    if diff > AGREEMENT:
        raise InputError(f"{path} does not compute what the ONNX model computes (relative difference {diff:.1e}); "
                         "give the TorchScript export of the same model")


def _with_channels(curve: SuperizationCurve, model: ModelGraph) -> SuperizationCurve:
    """Fill in each conv's output channels from the ONNX shapes (Grad-CAM layers are convs, not groups)."""
    from dataclasses import replace

    nodes = {node.name: node for node in model.proto.graph.node}
    layers = []
    for layer in curve.layers:
        shape = model.shapes.get(nodes[layer.name].output[0], ())
        channels = int(shape[1]) if len(shape) > 1 and isinstance(shape[1], int) else 0
        layers.append(replace(layer, tensor=nodes[layer.name].output[0], channels=channels))
    return replace(curve, layers=tuple(layers))
