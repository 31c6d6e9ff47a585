"""A TorchScript copy of a bundled reference model, rebuilt from its ONNX weights, for `analyze --torch-model`.

    python benchmarks/reference_torchscript.py --name resnet20_fmnist --out /tmp/resnet20_fmnist.pt

The zoo architecture is built and every Conv/Gemm of the ONNX file is copied into the module of the same
path (ONNX node "/blocks/blocks.3/shortcut/shortcut.0/Conv" -> module "blocks.3.shortcut.0"). The export
folded each BatchNorm into its conv, so the BatchNorms become identities carrying the folded bias. The
script checks that the traced module computes the ONNX model's logits before it writes anything.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import onnx
import torch
from onnx import numpy_helper


def rebuild(name: str) -> tuple[torch.nn.Module, str]:
    from edgeprune.reference import model_path, record_path
    from edgeprune.zoo import build

    record = json.loads(record_path(name).read_text())
    module = build(record["arch"], **record.get("builder_kwargs", {})).eval()
    proto = onnx.load(model_path(name))
    weights = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    modules = dict(module.named_modules())
    for node in proto.graph.node:
        if node.op_type not in ("Conv", "Gemm"):
            continue
        target = modules[module_path(node.name)]
        with torch.no_grad():
            target.weight.copy_(torch.from_numpy(weights[node.input[1]].copy()))
            bias = torch.from_numpy(weights[node.input[2]].copy()) if len(node.input) > 2 else None
            if node.op_type == "Gemm" or target.bias is not None:
                target.bias.copy_(bias)
            else:
                _identity_batchnorm(modules, target, bias)
    return module, str(model_path(name))


def module_path(node_name: str) -> str:
    """"/blocks/blocks.0/body/body.0/body.0.0/Conv" -> "blocks.0.body.0.0": each scope names its child by
    its parent's scope plus the child's name."""
    parts, previous = [], ""
    for scope in node_name.strip("/").split("/")[:-1]:
        parts.append(scope[len(previous) + 1:] if previous and scope.startswith(previous + ".") else scope)
        previous = scope
    return ".".join(parts)


def _identity_batchnorm(modules, conv, bias) -> None:
    """The BatchNorm right after ``conv`` in its Sequential becomes y = x + bias."""
    for parent in modules.values():
        children = list(parent.children())
        for i, child in enumerate(children[:-1]):
            if child is conv and isinstance(children[i + 1], torch.nn.BatchNorm2d):
                bn = children[i + 1]
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
                bn.weight.fill_(1.0)
                bn.bias.copy_(bias)
                return
    raise ValueError("no BatchNorm follows a bias-free conv")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="resnet20_fmnist")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    import onnxruntime as ort

    module, onnx_path = rebuild(args.name)
    x = torch.from_numpy(np.load("calibration/fashion-mnist/sample.npz")["input"][:16])
    traced = torch.jit.trace(module, x)
    expected = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    diff = float(np.abs(traced(x).detach().numpy() - expected).max())
    if diff > 1e-3:
        raise SystemExit(f"the rebuilt module differs from {onnx_path} by {diff:.2e}; nothing written")
    traced.save(args.out)
    print(f"wrote {args.out} (max logit difference to the ONNX model {diff:.1e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
