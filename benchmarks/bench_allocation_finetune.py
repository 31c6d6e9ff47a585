"""Each allocation strategy's plan after one epoch of distillation: does a better allocation stay better once
the pruned network is trained?

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 nice python benchmarks/bench_allocation_finetune.py \
        --models resnet20_fmnist --targets 5x,10x --aligns 1 --json out.json --out table.md

It reads the plans `bench_allocation.py` recorded (benchmarks/results/allocation.json and
allocation_semiotic.json: every group's kept count; inside a group the channels are the best by the
refit-error scores, as every row below chose them) and, for the rows that scored by refit-error, rebuilds
each plan from the same calibration images (512 of the train split, seed 0), cuts, proves and reconstructs
it, checks that its test accuracy is the one recorded (the plan was rebuilt exactly), then distils it from
the original for one epoch of the 60,000 labelled train images with `distill`'s defaults; the weights kept
are the best on 1,000 validation images (train images no calibration saw; the distillation itself sees
them). Test accuracy on the 10,000 test images. One process, one thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import MappingProxyType

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _splits import single_thread, splits  # noqa: E402

REPO = HERE.parent
RESULTS = HERE / "results"
METHODS = (
    "mi + refit-error (old default)",
    "knapsack",
    "rl, entropy reward",
    "rl, accuracy reward",
    "rl, agreement reward",
    "rl, refit reward",
    "semiotic, masked judge",
)


def recorded(model: str) -> list[dict]:
    rows = []
    for name in ("allocation.json", "allocation_semiotic.json"):
        path = RESULTS / name
        if path.exists():
            rows += json.loads(path.read_text()).get(model, {}).get("rows", [])
    return rows


def plan_of(analysis, scores: dict, counts: list[int]) -> dict:
    """The plan with ``counts`` kept per prunable group, each group's best channels by score."""
    kept = {}
    for group, count in zip(analysis.prunable_groups, counts):
        if count < group.channels:
            best = np.argsort(-scores[group.id].scores, kind="stable")[:count]
            kept[group.id] = tuple(sorted(int(c) for c in best))
    return kept


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20_fmnist")
    parser.add_argument("--targets", default="5x,10x")
    parser.add_argument("--aligns", default="1")
    parser.add_argument("--methods", default=";".join(METHODS), help="row labels, separated by semicolons")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--judge-images", type=int, default=1000)
    parser.add_argument("--json", help="write (update) every row here")
    parser.add_argument("--out", help="write the table here")
    args = parser.parse_args(argv)
    single_thread()
    from _data import calibration_set, split_arrays
    from onnx_graphsurgeon.logger import G_LOGGER

    from edgeprune.evaluate import compare
    from edgeprune.reconstruct import reconstruct
    from edgeprune.recovery import distill_outcome
    from edgeprune.settings import OptimizeSettings
    from edgeprune.stages import score_channels
    from edgeprune.surgery import PruningPlan, apply_plan, verify
    from edgeprune.train.settings import DistillSettings

    G_LOGGER.severity = G_LOGGER.ERROR
    found = json.loads(Path(args.json).read_text()) if args.json and Path(args.json).exists() else {}
    lines = []
    for name in args.models.split(","):
        data = splits(REPO / "edgeprune" / "reference" / f"{name}.onnx", 512, 5000, 10_000, 0)
        model, analysis = data.model, data.analysis
        settings = OptimizeSettings.from_dict({"seed": 0, "provider": "cpu"})
        scores, _ = score_channels(model, analysis, data.fit, settings)
        train_x, train_y, _ = split_arrays("train", 60_000, 1)
        train = calibration_set(model, train_x, train_y)
        judge = data.validation.take(args.judge_images, seed=0)
        original = compare(model, model, data.test, batch_size=500, provider="cpu").accuracy_original
        rows = found.setdefault(name, {"original": original, "rows": []})["rows"]
        done = {(r["target"], r["align"], r["method"]) for r in rows}
        for row in recorded(name):
            key = (row["target"], row["align"], row["method"])
            wanted = row["method"] in args.methods.split(";") and row["target"] in args.targets.split(",")
            if not wanted or str(row["align"]) not in args.aligns.split(",") or key in done:
                continue
            start = time.perf_counter()
            plan = PruningPlan(analysis.model_sha256, MappingProxyType(plan_of(analysis, scores, row["counts"])))
            pruned = apply_plan(model, analysis, plan)
            assert verify(model, analysis, plan, pruned).passed
            final, _ = reconstruct(model, pruned, analysis, plan, data.fit, batch_size=64, provider="cpu", seed=0)
            rebuilt = compare(model, final, data.test, batch_size=500, provider="cpu").accuracy_pruned
            student, report = distill_outcome(
                model, analysis, plan, final, train, judge, DistillSettings(epochs=args.epochs)
            )
            tuned = compare(model, student, data.test, batch_size=500, provider="cpu").accuracy_pruned
            result = {
                "target": row["target"],
                "align": row["align"],
                "method": row["method"],
                "recorded_test": row["test"],
                "rebuilt_test": rebuilt,
                "distilled_test": tuned,
                "best_step": report.best_step,
                "seconds": round(time.perf_counter() - start, 1),
            }
            rows.append(result)
            print(json.dumps(result), flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(found, indent=1))
        lines.append(table(name, found[name]))
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


def table(name: str, found: dict) -> str:
    rows, original = found["rows"], found["original"]
    out = [
        f"\n### {name} (original {100 * original:.2f}%)\n",
        "| target | align | strategy | after reconstruction (recorded / rebuilt) | after 1 epoch of distillation (drop) |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["align"], float(r["target"].rstrip("x")), METHODS.index(r["method"]))):
        out.append(
            f"| {r['target']} | {r['align']} | {r['method']} | {100 * r['recorded_test']:.2f}% / "
            f"{100 * r['rebuilt_test']:.2f}% | {100 * r['distilled_test']:.2f}% "
            f"({100 * (r['distilled_test'] - original):+.2f}) |"
        )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
