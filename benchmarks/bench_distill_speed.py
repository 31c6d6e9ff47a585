"""Distillation throughput: one epoch of `distill` on the ONNX executor against one epoch of training the same
pruned architecture as a plain torch nn.Module, in one process, interleaved, medians of the rounds.

    python benchmarks/bench_distill_speed.py [--target 0.2] [--steps 40] [--rounds 3]

The pruned model is the ResNet-20 reference model cut by the default optimize stages to --target of its MACs
(calibrated on the bundled sample). The plain module is the zoo's ResNet-20 with every conv and linear layer
replaced by one of the pruned shapes carrying the pruned weights (BatchNorm folded: identities), checked
equal to ONNX Runtime on the pruned model. Both train on the same Fashion-MNIST train batches of 128 with the
benchmark recipe; the plain module with cross-entropy only (no teacher), distillation with its teacher.
Per-epoch times are per-step medians times the 469 steps of a 60,000-image epoch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import REPO, calibration_set, split_arrays  # noqa: E402
from reference_torchscript import module_path  # noqa: E402

STEPS_PER_EPOCH = 469


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.2)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    import torch

    import _recipe
    from edgeprune.train import DistillSettings, distill

    torch.set_num_threads(args.threads)
    teacher, pruned = _pruned_model(args.target)
    plain = plain_module(pruned)
    images, labels, _ = split_arrays("train", 128 * args.steps + 256, 0)
    train = calibration_set(teacher, images[:-256], labels[:-256])
    held = calibration_set(teacher, images[-256:], labels[-256:])
    x, y = torch.from_numpy(images[:-256]), torch.from_numpy(labels[:-256])
    times: dict[str, list[float]] = {"distill (executor + teacher)": [], "plain nn.Module": []}
    for _ in range(args.rounds):
        start = time.perf_counter()
        _, report = distill(pruned, teacher, train, held, DistillSettings(steps=args.steps, evals_per_epoch=1))
        times["distill (executor + teacher)"].append((time.perf_counter() - start) / args.steps)
        times["plain nn.Module"].append(_plain_steps(plain, x, y, args.steps, _recipe) / args.steps)
    distilled, reference = (statistics.median(times[k]) for k in times)
    print(f"ResNet-20 at {args.target:.0%} of the MACs, batch 128, {args.steps} steps x {args.rounds} rounds:")
    for name, values in times.items():
        print(f"  {name:<30} {statistics.median(values) * 1000:7.1f} ms/step  "
              f"-> {statistics.median(values) * STEPS_PER_EPOCH:6.1f} s per 60,000-image epoch")
    print(f"  ratio distill / plain: {distilled / reference:.2f}x (target: at most 2x)")
    return 0


def _pruned_model(target: float):
    from edgeprune.analysis import analyze
    from edgeprune.calibration import load_calibration
    from edgeprune.cost import PlanCostModel
    from edgeprune.graph import load_model
    from edgeprune.hardware import resolve_device
    from edgeprune.settings import OptimizeSettings
    from edgeprune.selection import Budget, Selector
    from edgeprune.stages import prune_to_budget

    model = load_model(REPO / "edgeprune" / "reference" / "resnet20_fmnist.onnx")
    analysis = analyze(model)
    budget = Budget(macs=target, alignment=resolve_device("host").alignment)
    data = load_calibration(REPO / "calibration" / "fashion-mnist" / "sample.npz", model)
    fit, held = data.split(0.2, seed=0)
    config = OptimizeSettings.from_dict({"provider": "cpu"})
    outcome = prune_to_budget(model, analysis, Selector(analysis, PlanCostModel(model, analysis), budget), fit, held, config)
    return model, outcome.final


def plain_module(pruned):
    """The zoo ResNet-20 with each conv/linear replaced by one of the pruned model's shape and weights."""
    import onnxruntime as ort
    import torch
    from onnx import numpy_helper

    from edgeprune.zoo import build

    module = build("resnet20", in_channels=1).eval()
    weights = {t.name: numpy_helper.to_array(t) for t in pruned.proto.graph.initializer}
    for node in pruned.proto.graph.node:
        if node.op_type not in ("Conv", "Gemm"):
            continue
        path = module_path(node.name)
        parent_path, _, child = path.rpartition(".")
        parent = module.get_submodule(parent_path) if parent_path else module
        w, b = weights[node.input[1]], weights[node.input[2]]
        if node.op_type == "Conv":
            attrs = {a.name: list(a.ints) if a.ints else a.i for a in node.attribute}
            layer = torch.nn.Conv2d(w.shape[1] * attrs.get("group", 1), w.shape[0], tuple(w.shape[2:]),
                                    stride=tuple(attrs.get("strides", [1, 1])),
                                    padding=tuple(attrs.get("pads", [0, 0, 0, 0])[:2]), groups=attrs.get("group", 1))
            _drop_batchnorm_after(parent, child)
        else:
            layer = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w.copy()))
            layer.bias.copy_(torch.from_numpy(b.copy()))
        setattr(parent, child, layer)
    x = np.load(REPO / "calibration" / "fashion-mnist" / "sample.npz")["input"][:16]
    expected = ort.InferenceSession(pruned.serialized(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    error = float(np.abs(got - expected).max() / np.abs(expected).max())
    if error > 1e-4:
        raise SystemExit(f"the plain module differs from the pruned ONNX model by {error:.1e}")
    return module.train()


def _drop_batchnorm_after(parent, child: str) -> None:
    import torch

    names = [name for name, _ in parent.named_children()]
    index = names.index(child)
    if index + 1 < len(names) and isinstance(getattr(parent, names[index + 1]), torch.nn.BatchNorm2d):
        setattr(parent, names[index + 1], torch.nn.Identity())


def _plain_steps(module, x, y, steps: int, recipe) -> float:
    import torch
    import torch.nn.functional as F

    optimizer = recipe.make_optimizer(module.parameters())
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = recipe.cosine_lr(step, steps)
        batch = slice(step * 128, (step + 1) * 128)
        loss = F.cross_entropy(module(recipe.augment(x[batch], generator)), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


if __name__ == "__main__":
    raise SystemExit(main())
