"""Does pruning make CNNs faster on this machine, and does the latency model predict by how much?

    nice python benchmarks/bench_latency.py --out docs/latency-table.md

For a ResNet-18-style and a MobileNetV2-style CNN at 224x224 (random weights: latency does not depend on
them), on this machine's CPU with ONNX Runtime:
1. profile the host (`edgeprune profile --device host --model ...`: per-layer tables and the whole model);
   (with one ONNX Runtime thread by default: on a shared 2-core machine a second thread mostly waits);
2. prune to 2x and 5x fewer MACs (uniform ratio, channels by L1 norm), with the host's channel alignment and
   without it (alignment 1), and to a predicted 2x latency speed-up; measure each pruned model interleaved
   with the original (median of rounds) and compare with the latency model's prediction;
3. the latency model's error over all these plans plus a sweep of uniform ratios: median absolute % error of
   the predicted latency (ms) and of the predicted speed-up, against the interleaved measurement.
Prints markdown tables (and writes them with --out).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from types import MappingProxyType
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROUNDS = 15


def resnet18(width: int = 64):
    """ImageNet ResNet-18 layout: 7x7/2 stem, max-pool, 4 stages of 2 basic blocks (64-128-256-512)."""
    from torch import nn

    from edgeprune.zoo._blocks import classifier, conv_bn
    from edgeprune.zoo.resnet import BasicBlock

    blocks, channels = [], width
    for stage, stride in enumerate((1, 2, 2, 2)):
        out = width * 2 ** stage
        blocks += [BasicBlock(channels, out, stride), BasicBlock(out, out)]
        channels = out
    return nn.Sequential(conv_bn(3, width, kernel=7, stride=2), nn.MaxPool2d(3, 2, 1), *blocks, classifier(channels, 1000))


def mobilenet_v2():
    """ImageNet MobileNetV2 (width 1.0): 32/2 stem, 17 inverted residuals, 1x1 to 1280, classifier."""
    from torch import nn

    from edgeprune.zoo._blocks import classifier, conv_bn
    from edgeprune.zoo.mobilenet import InvertedResidual

    layout = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
    blocks, channels = [], 32
    for expand, out, repeats, stride in layout:
        for i in range(repeats):
            blocks.append(InvertedResidual(channels, out, stride if i == 0 else 1, expand))
            channels = out
    return nn.Sequential(conv_bn(3, 32, stride=2, act=nn.ReLU6), *blocks, conv_bn(channels, 1280, kernel=1, act=nn.ReLU6),
                         classifier(1280, 1000))


def export(name: str, folder: Path) -> Path:
    import torch

    from edgeprune.export import export_torch
    from edgeprune.zoo._blocks import randomize_parameters

    module = {"resnet18": resnet18, "mobilenet_v2": mobilenet_v2}[name]()
    randomize_parameters(module, seed=0)
    return export_torch(module, [torch.randn(1, 3, 224, 224)], folder / f"{name}.onnx", dynamic_batch=False)


def l1_scores(model, analysis) -> dict[str, np.ndarray]:
    """L1 norm of each channel's producer weights (any fixed score will do for latency)."""
    from onnx import numpy_helper

    weights = {t.name: numpy_helper.to_array(t) for t in model.proto.graph.initializer}
    nodes = {n.name: n for n in model.proto.graph.node}
    scores = {}
    for group in analysis.prunable_groups:
        total = np.zeros(group.channels)
        for producer in group.producers:
            node = nodes.get(producer)
            w = weights.get(node.input[1]) if node is not None and len(node.input) > 1 else None
            if w is not None and w.shape[0] == group.channels:
                total += np.abs(w.reshape(w.shape[0], -1)).sum(axis=1)
        scores[group.id] = total
    return scores


class Case:
    def __init__(self, path: Path, profile) -> None:
        from edgeprune.analysis import analyze
        from edgeprune.cost import PlanCostModel
        from edgeprune.graph import load_model
        from edgeprune.hardware import LatencyModel

        self.model = load_model(path)
        self.analysis = analyze(self.model)
        self.costs = PlanCostModel(self.model, self.analysis)
        self.latency = LatencyModel(profile, self.model, self.analysis)
        # the same device and whole-model measurement without the tables: the roofline alone, for comparison
        self.roofline = LatencyModel(replace(profile, layers=MappingProxyType({})), self.model, self.analysis)
        self.scores = l1_scores(self.model, self.analysis)
        self.original = self.model.proto.SerializeToString()

    def plan(self, budget, strategy: str = "uniform"):
        from edgeprune.selection import Selector, select_ranked, select_uniform

        selector = Selector(self.analysis, self.costs, budget, self.latency)
        return (select_uniform if strategy == "uniform" else select_ranked)(selector, self.scores)

    def uniform(self, ratio: float, alignment: int):
        from edgeprune.selection.counts import top_channels, valid_count

        return {g.id: top_channels(g, self.scores[g.id], valid_count(g, ratio * g.channels, 0.0, alignment))
                for g in self.analysis.prunable_groups}

    def measure(self, kept) -> dict:
        from edgeprune.hardware.timing import Runner, compare
        from edgeprune.surgery import PruningPlan, apply_plan

        pruned = apply_plan(self.model, self.analysis, PruningPlan(self.analysis.model_sha256, kept))
        threads = self.latency.profile.threads or None
        result = compare(Runner(self.original, threads=threads), Runner(pruned.proto.SerializeToString(), threads=threads),
                         warmup=3, rounds=ROUNDS)
        keep = self.analysis.keep_mask(kept)
        full = np.ones_like(keep)
        return {"macs": self.costs.cost(keep).macs / self.costs.cost(full).macs,
                "predicted_ms": self.latency.predict(keep), "predicted_full_ms": self.latency.predict(full),
                "measured_ms": float(np.percentile(result.b.samples_ms, 20)), "speedup": result.ratio,
                "noise": result.noise, "predicted_speedup": self.latency.predict(full) / self.latency.predict(keep),
                "roofline_ms": self.roofline.predict(keep),
                "roofline_speedup": self.roofline.predict(full) / self.roofline.predict(keep),
                "aligned": all(len(k) % 8 == 0 or len(k) == self.analysis.group(g).channels for g, k in kept.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,mobilenet_v2")
    parser.add_argument("--points", type=int, default=4, help="profile: counts sampled per channel axis")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for profiling and measuring")
    parser.add_argument("--out", help="also write the tables to this markdown file")
    args = parser.parse_args(argv)

    from onnx_graphsurgeon.logger import G_LOGGER

    from edgeprune.hardware import resolve_device
    from edgeprune.hardware.profiler import ProfileSettings, profile_model
    from edgeprune.selection import Budget

    G_LOGGER.severity = G_LOGGER.ERROR
    folder = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    host = replace(resolve_device("host"), threads=args.threads)
    speed_rows, error_rows = [], []
    for name in args.models.split(","):
        path = export(name, folder)
        start = time.perf_counter()
        profile = profile_model(host, path, ProfileSettings(points=args.points, seconds_per_point=0.1))
        profile_s = time.perf_counter() - start
        case = Case(path, profile)
        keep = np.ones(len(case.analysis.class_group), dtype=bool)
        start = time.perf_counter()
        for _ in range(200):
            case.latency.predict(keep)
        call_ms = (time.perf_counter() - start) * 1000 / 200
        print(f"{name}: profiled {len(profile.layers)} layer shapes in {profile_s:.0f} s, whole model "
              f"{next(iter(profile.models.values())).ms:.2f} ms, {len(case.latency.layers)} layers modelled, "
              f"one prediction {call_ms:.2f} ms", file=sys.stderr)
        for reduction in (2, 5):
            for alignment in (1, 8):
                kept = case.plan(Budget(macs=1 / reduction, floor=0.05, alignment=alignment))
                row = case.measure(kept)
                speed_rows.append((name, f"{reduction}x MACs", alignment, row))
                error_rows.append(row)
        kept = case.plan(Budget(speedup=2.0, floor=0.05, alignment=8))
        row = case.measure(kept)
        speed_rows.append((name, "2x predicted latency", 8, row))
        error_rows.append(row)
        for ratio in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4):
            for alignment in (1, 8):
                error_rows.append(case.measure(case.uniform(ratio, alignment)) | {"model": name})
        for row in error_rows:
            row.setdefault("model", name)
    text = render(speed_rows, error_rows)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


def render(speed_rows, error_rows) -> str:
    lines = ["| model | target | align | MACs kept | MAC reduction | measured speed-up (+-95%) | predicted (tables) "
             "| predicted (roofline) |", "|---|---|---|---|---|---|---|---|"]
    for name, target, alignment, r in speed_rows:
        lines.append(f"| {name} | {target} | {alignment} | {r['macs']:.1%} | {1 / r['macs']:.2f}x | "
                     f"{r['speedup']:.2f}x (+-{r['noise']:.0%}) | {r['predicted_speedup']:.2f}x | "
                     f"{r['roofline_speedup']:.2f}x |")
    lines += ["", "| plans | count | median abs % error, latency: tables | roofline | median abs % error, speed-up: "
              "tables | roofline |", "|---|---|---|---|---|---|"]
    by_model: dict[str, list[dict]] = {}
    for r in error_rows:
        by_model.setdefault(f"{r['model']}, {'aligned' if r['aligned'] else 'unaligned'} plans", []).append(r)
    by_model["all aligned plans"] = [r for r in error_rows if r["aligned"]]
    by_model["all plans"] = list(error_rows)
    for name, rows in sorted(by_model.items(), key=lambda item: item[0].startswith("all")):
        errors = [statistics.median(abs(r[p] - r[m]) / r[m] for r in rows) for p, m in (
            ("predicted_ms", "measured_ms"), ("roofline_ms", "measured_ms"), ("predicted_speedup", "speedup"),
            ("roofline_speedup", "speedup"))]
        lines.append(f"| {name} | {len(rows)} | " + " | ".join(f"{e:.1%}" for e in errors) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
