"""Depth pruning against channel pruning at the same predicted latency on a launch-bound device.

    nice python benchmarks/bench_depth.py --out docs/results-depth-table.md     # --models, --calib, --test

The blocks of each model are ordered by the semiotic rule (`--depth on`: smallest |Delta H| first, re-measured
after each removal, each block taken only if the refitted model loses at most 1 point on a quarter of the
calibration images; the stage guard keeps one residual block per stage). At the speed-up predicted on the
Jetson Orin Nano profile (TensorRT fp16, roofline with an 8 us launch cost per layer) for the first k blocks
of that order, k = 1, 2, ..., the plans compared at that same predicted latency are:
- channels: the default ranking (`mi`, refit-error scores, floor 25%, channels in steps of 8);
- depth: the k blocks alone (what `--strategy semiotic --depth on` or `only` chooses at that target);
- mixed: the first ceil(k/2) blocks, then channels by the same ranking to the target.
Past what the guards let the blocks reach (10% beyond), the strategy's own choice: every block it took, then
channels.
Each plan is cut, proven, reconstructed on the calibration images (1,000 of the Fashion-MNIST train split) and
judged on the Fashion-MNIST test split; the original and the pruned model are timed on this machine,
interleaved, one thread. The ResNet-18-style model (224x224, random weights) has no accuracy; its blocks are
ranked by |Delta H| on seeded random images with no guard, its channels by L1 norm, and the host's latency is
also predicted from tables profiled here (`edgeprune profile --device host --model`), to check the latency
model on depth plans. Prints markdown tables (and writes them with --out).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from types import MappingProxyType

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def one_thread() -> None:
    """One thread for ONNX Runtime, torch and BLAS: the machine's two cores are shared."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    from edgeprune import runtime

    options = runtime._session_options
    runtime._session_options = lambda threads=None: options(threads or 1)


class Never:
    """A selector no plan satisfies: the depth search then runs until its guards stop it (the full order)."""

    latency = None

    def meets(self, kept) -> bool:
        return False


class Case:
    def __init__(self, name: str, args) -> None:
        from edgeprune.analysis import analyze
        from edgeprune.cost import PlanCostModel
        from edgeprune.graph import load_model
        from edgeprune.hardware import LatencyModel, resolve_device

        self.name = name
        if name == "resnet18":
            import torch
            from bench_latency import export

            torch.set_num_threads(1)
            self.model = load_model(export("resnet18", Path(args.work)))
            self.fit = self.test = None
        else:
            from _data import experiment

            ex = experiment(REPO / "edgeprune" / "reference" / f"{name}_fmnist.onnx", args.calib, args.test, args.seed)
            self.model, self.fit, self.test = ex.model, ex.fit, ex.test
            self.train = None
            if args.distill_epochs > 0:
                from _data import calibration_set, split_arrays

                train_x, train_y, _ = split_arrays("train", args.train_images, args.seed + 1)
                self.train = calibration_set(self.model, train_x, train_y, Path(args.work))
        self.analysis = analyze(self.model)
        self.costs = PlanCostModel(self.model, self.analysis)
        self.jetson = LatencyModel(resolve_device("jetson-orin-nano"), self.model, self.analysis)
        self.host = None
        if name == "resnet18":
            from edgeprune.hardware.profiler import ProfileSettings, profile_model

            host = profile_model(resolve_device("host"), self.model, ProfileSettings(points=3, threads=1))
            self.host = LatencyModel(host, self.model, self.analysis)
        self.scores = self._scores(args)
        self.original = self.model.proto.SerializeToString()

    def _scores(self, args) -> dict:
        if self.fit is None:
            from bench_latency import l1_scores

            return l1_scores(self.model, self.analysis)
        from edgeprune.scoring.measure import measure_and_score

        scores, _ = measure_and_score(
            self.model, self.analysis, self.fit, "refit-error", provider="cpu", seed=args.seed
        )
        return {gid: s.scores for gid, s in scores.items()}

    def selector(self, speedup: float):
        from edgeprune.selection import Budget, Selector

        return Selector(self.analysis, self.costs, Budget(speedup=speedup, floor=0.25, alignment=8), self.jetson)

    def context(self, selector, args):
        from edgeprune.selection.strategies import SelectionContext

        return SelectionContext(
            self.model,
            self.analysis,
            selector,
            self.scores,
            fit=self.fit,
            seed=args.seed,
            batch_size=100,
            provider="cpu",
        )

    def depth_order(self, args) -> tuple[list, list]:
        """The blocks in the order the semiotic rule takes them, and the steps it tried."""
        from edgeprune.semiotic.depth import block_deltas, remove_blocks
        from edgeprune.semiotic.settings import DepthSettings

        if self.fit is not None:
            batches = [b.inputs for b in self.fit.take(64, seed=args.seed).batches(64)]
            depth = DepthSettings("on", args.guard, args.stage_keep)
            result = remove_blocks(self.context(Never(), args), depth, batches)
            return list(result.removed), list(result.steps)
        from edgeprune.analysis.blocks import find_blocks
        from edgeprune.surgery.depth import bypassed_model, stage_allows

        rng = np.random.default_rng(args.seed)
        name = self.model.input_names[0]
        batches = [{name: rng.standard_normal((1, 3, 224, 224)).astype(np.float32)} for _ in range(8)]
        found = find_blocks(self.model, self.analysis)
        blocks, order = [b for b in found.blocks if b.internal_groups], []
        while True:  # the same rule without the accuracy guard (random weights): smallest |Delta H| first
            left = [
                b for b in blocks if b not in order and stage_allows(found, [o.id for o in order], b, args.stage_keep)
            ]
            if not left:
                return order, []
            deltas = block_deltas(bypassed_model(self.model, order), left, order, batches, None, "cpu")
            order.append(min(left, key=lambda b: (abs(deltas[b.id]), left.index(b))))

    def evaluate(self, kept, args) -> dict:
        from edgeprune.evaluate import compare
        from edgeprune.hardware.validation import measure_on_host
        from edgeprune.reconstruct import reconstruct
        from edgeprune.surgery import PruningPlan, apply_plan, verify
        from edgeprune.surgery.depth import plan_blocks

        plan = PruningPlan(self.analysis.model_sha256, MappingProxyType(kept))
        pruned = apply_plan(self.model, self.analysis, plan)
        assert verify(self.model, self.analysis, plan, pruned).passed
        keep = self.analysis.keep_mask(kept)
        removed, gain = self.jetson.gain_from_removed(keep)
        row = {
            "macs": self.costs.cost(keep).macs / self.costs.cost(np.ones_like(keep)).macs,
            "jetson": self.jetson.predict_full() / self.jetson.predict(keep),
            "depth_share": removed / gain if gain > 0 else 0.0,
            "blocks": len(plan_blocks(self.model, self.analysis, plan)[1]),
        }
        if self.fit is not None:
            final, _ = reconstruct(
                self.model, pruned, self.analysis, plan, self.fit, batch_size=100, provider="cpu", seed=args.seed
            )
            judged = compare(self.model, final, self.test, batch_size=200, provider="cpu")
            row["accuracy"], row["original"] = judged.accuracy_pruned, judged.accuracy_original
            if self.train is not None:
                row["distilled"] = self.distilled(plan, final, args)
        else:
            final = pruned
        host = measure_on_host(self.original, final.proto.SerializeToString(), rounds=args.rounds, threads=1)
        row["host"], row["noise"] = host.speedup, host.noise
        if self.host is not None:
            row["host_predicted"] = self.host.predict_full() / self.host.predict(keep)
        return row

    def distilled(self, plan, final, args) -> float:
        """Test accuracy after distilling ``final`` from the original for ``--distill-epochs`` of the labelled
        train images (distill's defaults); the weights kept are the best on ``--distill-judge`` calibration images."""
        from edgeprune.evaluate import compare
        from edgeprune.recovery import distill_outcome
        from edgeprune.train.settings import DistillSettings

        held_out = self.fit.take(args.distill_judge, seed=args.seed)
        settings = DistillSettings(epochs=args.distill_epochs)
        student, _ = distill_outcome(self.model, self.analysis, plan, final, self.train, held_out, settings)
        return compare(self.model, student, self.test, batch_size=200, provider="cpu").accuracy_pruned


def plans(case: Case, k: int | None, order: list) -> tuple[float, dict]:
    """At the predicted speed-up of the first ``k`` blocks of ``order`` (None: 10% past all of them, where
    the blocks alone fall short): the plans there, a string saying why where one cannot reach it."""
    from edgeprune.errors import BudgetError, InputError
    from edgeprune.selection.ranker import select_ranked
    from edgeprune.semiotic.depth_selector import DepthSelector
    from edgeprune.surgery.depth import with_removed

    blocks = order if k is None else order[:k]
    reach = case.jetson.predict_full() / case.jetson.predict(case.analysis.keep_mask(with_removed({}, blocks)))
    target = reach * 1.1 if k is None else reach * (1 - 1e-9)
    selector = case.selector(target)

    def channels_after(taken) -> dict | str:
        try:
            depth = DepthSelector(selector, taken)
            return depth.complete(select_ranked(depth, case.scores))
        except (BudgetError, InputError):
            return f"unreachable{f' with {len(taken)} blocks' if taken else ''} at the floors"

    out: dict[str, object] = {"channels": channels_after([])}
    if k is None:
        out["depth"] = f"the guards stop at {len(order)} blocks"
        out["semiotic (blocks, then channels)"] = channels_after(order)
    else:
        out["depth"] = with_removed({}, blocks)
        if k > 1:
            out[f"mixed ({math.ceil(k / 2)} blocks + channels)"] = channels_after(blocks[: math.ceil(k / 2)])
    return target, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20,mobilenet_v2,resnet18")
    parser.add_argument("--calib", type=int, default=1000)
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stage-keep", type=int, default=1, help="(MobileNetV2 uses 0: one block per stage)")
    parser.add_argument("--guard", type=float, default=1.0, help="--depth-guard: points one removal may cost")
    parser.add_argument("--work", default="/tmp")
    parser.add_argument("--distill-epochs", type=float, default=0.0, help="also the accuracy after distillation")
    parser.add_argument("--train-images", type=int, default=60000, help="labelled train images to distil on")
    parser.add_argument(
        "--distill-judge", type=int, default=200, help="calibration images that choose the distilled weights kept"
    )
    parser.add_argument("--rows", default="", help="only the plans whose label starts with one of these (depth,...)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    one_thread()
    lines = []
    for name in args.models.split(","):
        start = time.time()
        stage_keep = args.stage_keep
        if name == "mobilenet_v2":
            args.stage_keep = 0
        case = Case(name, args)
        order, steps = case.depth_order(args)
        args.stage_keep = stage_keep
        lines += report(case, order, steps, args)
        lines.append(f"\n({name}: {time.time() - start:.0f} s)\n")
        print("\n".join(lines[-40:]), flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


def report(case: Case, order: list, steps: list, args) -> list[str]:
    guard = f" (depth guard {args.guard:g} points)" if case.fit is not None else " (no guard: random weights)"
    lines = [f"\n### {case.name}{guard}\n", "depth order: " + (", ".join(b.id for b in order) or "none")]
    for s in steps:
        lines.append(
            f"- tried {s.block}: Delta H {s.delta:+.4f}, {s.drop:.2f} points lost -> {'taken' if s.taken else 'kept'}"
        )
    head = (
        "| target | plan | blocks | MACs kept | Jetson predicted | of it from removed layers | host measured (+-95%) |"
    )
    extra = " host predicted |" if case.host is not None else " test accuracy (drop) |"
    distilling = case.fit is not None and args.distill_epochs > 0
    if distilling:
        extra += f" after {args.distill_epochs:g}-epoch distillation (drop) |"
    lines += ["", head + extra, "|---|---|---|---|---|---|---|---|" + ("---|" if distilling else "")]
    cache: dict = {}
    for k in [*range(1, len(order) + 1), None]:
        target, found = plans(case, k, order)
        for label, kept in found.items():
            if args.rows and not label.startswith(tuple(args.rows.split(","))):
                continue
            if isinstance(kept, str):
                lines.append(
                    f"| {target:.2f}x | {label} | - | - | {kept} | - | - | - |" + (" - |" if distilling else "")
                )
                continue
            key = tuple(sorted(kept.items()))
            row = cache[key] = cache.get(key) or case.evaluate(kept, args)
            tail = (
                f" {row['host_predicted']:.2f}x |"
                if "host_predicted" in row
                else f" {100 * row['accuracy']:.2f}% ({100 * (row['accuracy'] - row['original']):+.2f}) |"
            )
            if "distilled" in row:
                tail += f" {100 * row['distilled']:.2f}% ({100 * (row['distilled'] - row['original']):+.2f}) |"
            elif distilling:
                tail += " - |"
            lines.append(
                f"| {target:.2f}x | {label} | {row['blocks']} | {row['macs']:.1%} | {row['jetson']:.2f}x | "
                f"{row['depth_share']:.0%} | {row['host']:.2f}x (+-{row['noise']:.0%}) |" + tail
            )
            print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    main()
