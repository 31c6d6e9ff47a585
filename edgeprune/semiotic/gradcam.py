"""Grad-CAM saliency from a TorchScript copy of the model, for the superization curve.

ONNX Runtime gives no gradients, so Grad-CAM needs the model in torch. A loaded TorchScript module takes no
forward hooks; instead the module is frozen (submodules inlined, BatchNorm folded into the convs, as in the
ONNX export) and its graph is copied with every convolution's output appended to the returned values. One
run then gives the logits and every conv map A^k with autograd attached, and

    Grad-CAM_k = ReLU( sum_c alpha_c A^k_c ),  alpha_c = mean over sites of d y_top / d A^k_c,

with y_top the logit of the model's own top class (no labels needed). Limits: only convolutions on the
graph's top level are seen (one inside a scripted loop or branch is not); the model must take one input;
each ONNX Conv (the layers, in topological order) is paired with the torch conv of the same (BatchNorm-
folded) weights, so both must hold the same convs (checked: count and weights; the order is used only when
the weights are not constants), and the two must compute the same outputs (checked on the first batch).
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
        raise InputError(
            f"{path} is not a TorchScript model torch.jit.load can read ({str(exc).splitlines()[0]}); "
            "save one with torch.jit.script(model).save(path) or torch.jit.trace"
        ) from None
    graph = module.graph.copy()
    nodes = [node for node in graph.nodes() if node.kind() in _CONV_KINDS]
    convs = [node.output() for node in nodes]
    weights = [_constant(node.inputsAt(1)) for node in nodes]
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

    return forward, weights


def _constant(value) -> np.ndarray | None:
    """A conv's weight when freezing made it a constant (it does for every parameter), else None."""
    if value.node().kind() != "prim::Constant":
        return None
    tensor = value.toIValue()
    return tensor.detach().numpy() if hasattr(tensor, "detach") else None


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


def onnx_conv_weights(model: ModelGraph) -> list[np.ndarray | None]:
    from onnx import numpy_helper

    initializers = {t.name: t for t in model.proto.graph.initializer}
    return [
        numpy_helper.to_array(initializers[node.input[1]]) if node.input[1] in initializers else None
        for node in model.proto.graph.node
        if node.op_type == "Conv"
    ]


def match_convs(torch_weights, onnx_weights, path: Path) -> list[int]:
    """For each ONNX conv (topological order), the torch conv with the same weights.

    Both exports fold BatchNorm into the conv, so the weights agree to float rounding; matching on them
    (not on the order) is what pairs a shortcut conv correctly when the two graphs order a block differently.
    Without weights to compare, the order is used.
    """
    if len(torch_weights) != len(onnx_weights):
        raise InputError(
            f"{path} runs {len(torch_weights)} convolutions and the ONNX model has {len(onnx_weights)}; "
            "give the TorchScript export of the same model"
        )
    if any(w is None for w in torch_weights) or any(w is None for w in onnx_weights):
        logger.warning("conv weights are not constants: Grad-CAM layers are matched by order")
        return list(range(len(onnx_weights)))
    order, free = [], set(range(len(torch_weights)))
    for weight in onnx_weights:
        scale = max(float(np.abs(weight).max()), 1e-12)
        gaps = {
            j: float(np.abs(torch_weights[j] - weight).max()) / scale
            for j in free
            if torch_weights[j].shape == weight.shape
        }
        best = min(gaps, key=lambda j: (gaps[j], j), default=None)
        if best is None or gaps[best] > AGREEMENT:
            raise InputError(
                f"{path} has no convolution with the weights of an ONNX Conv of shape {weight.shape}; "
                "give the TorchScript export of the same model"
            )
        order.append(best)
        free.remove(best)
    return order


def measure_gradcam_curve(
    model: ModelGraph,
    calibration,
    torch_model: Path,
    *,
    levels: int | None = None,
    resolution: int | None = None,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> SuperizationCurve:
    """The curve of Grad-CAM maps, one layer per conv of the ONNX model (names from it, maps from torch)."""
    import torch

    if len(model.input_names) != 1:
        raise InputError("--torch-model works for models with one input only")
    forward, torch_weights = load_torchscript(torch_model)
    names = onnx_conv_names(model)
    order = match_convs(torch_weights, onnx_conv_weights(model), torch_model)
    layers = [SaliencyLayer(name, name, (), 0) for name in names]
    accumulator = CurveAccumulator(layers, levels, resolution=resolution)
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
        accumulator.update({name: cams[order[i]] for i, name in enumerate(names)})
        done += len(batch)
        if progress:
            progress(done, calibration.count)
    return _with_channels(accumulator.curve("grad-cam"), model)


def _check_agreement(session, inputs, torch_logits: np.ndarray, path: Path) -> None:
    reference = session.run(None, inputs)[0]
    if reference.shape != torch_logits.shape:
        raise InputError(
            f"{path} returns shape {torch_logits.shape}, the ONNX model {reference.shape}; "
            "give the TorchScript export of the same model"
        )
    scale = max(float(np.abs(reference).max()), 1e-12)
    diff = float(np.abs(reference - torch_logits).max()) / scale
    if diff > AGREEMENT:
        raise InputError(
            f"{path} does not compute what the ONNX model computes (relative difference {diff:.1e}); "
            "give the TorchScript export of the same model"
        )


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
