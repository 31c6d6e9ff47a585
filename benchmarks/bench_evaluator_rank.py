"""How well the search's plan evaluators rank plans against the truth (the pruned and reconstructed model).

    OMP_NUM_THREADS=1 nice python benchmarks/bench_evaluator_rank.py --models resnet20_fmnist --targets 5x,10x --plans 30

For each reference model and MAC target: ``--plans`` random allocations (per-group keep ratios drawn at
random, then scaled together to meet the target; channels inside a group by refit-error), each judged by
every evaluator the search can use, and truly pruned, reconstructed (on all the calibration images) and
measured on the test split (10,000 images: the truth must be much less noisy than the differences). Printed: Spearman's rank correlation between each
evaluator's figure and the true accuracy, over the plans of one target and over all targets together.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _splits import single_thread, splits  # noqa: E402


def spearman(a, b) -> float:
    """Spearman's rho (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def random_plans(selector, scores, count: int, seed: int, alignment: int):
    """``count`` plans meeting the selector's budget as closely as the counts allow: random per-group ratios
    in [0.1, 1], all multiplied by the largest factor that still meets it."""
    from edgeprune.selection import top_channels, valid_count

    rng = np.random.default_rng(seed)
    groups = selector.analysis.prunable_groups
    plans = []
    while len(plans) < count:
        ratios = rng.uniform(0.1, 1.0, len(groups))

        def plan(t: float):
            return {
                g.id: top_channels(g, scores[g.id], valid_count(g, min(t * r, 1.0) * g.channels, 0.0, alignment))
                for g, r in zip(groups, ratios)
            }

        low, high = 0.0, 1.0 / ratios.min()
        if not selector.meets(plan(low)):
            continue
        for _ in range(30):
            middle = (low + high) / 2
            low, high = (middle, high) if selector.meets(plan(middle)) else (low, middle)
        plans.append(plan(low))
    return plans


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20_fmnist,vgg_fmnist,mobilenet_v2_fmnist")
    parser.add_argument("--targets", default="5x,10x")
    parser.add_argument("--plans", type=int, default=30)
    parser.add_argument("--calib-images", type=int, default=512)
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--search-images", type=int, default=64)
    parser.add_argument("--align", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write every plan's figures here")
    args = parser.parse_args(argv)
    single_thread()
    from onnx_graphsurgeon.logger import G_LOGGER

    G_LOGGER.severity = G_LOGGER.ERROR
    from edgeprune.reference import model_path

    everything = {}
    for name in args.models.split(","):
        everything[name] = run_model(args, name, model_path(name))
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1))
    return 0


def run_model(args, name: str, path) -> dict:
    from edgeprune.capture.grams import capture_grams
    from edgeprune.cost import PlanCostModel
    from edgeprune.evaluate import compare
    from edgeprune.reconstruct import reconstruct
    from edgeprune.scoring.measure import measure_and_score
    from edgeprune.scoring.plan_refit import PlanRefit
    from edgeprune.search.judge import Judge, measured_layers
    from edgeprune.search.reconstructed import ReconstructedEvaluator
    from edgeprune.search.sequential import SequentialEvaluator
    from edgeprune.selection import Budget, Selector, parse_fraction
    from edgeprune.surgery import PruningPlan, apply_plan

    data = splits(path, args.calib_images, 0, args.test_images, args.seed)
    model, analysis, fit = data.model, data.analysis, data.fit
    scores, _ = measure_and_score(model, analysis, fit, "refit-error", provider="cpu", seed=args.seed)
    scores = {gid: s.scores for gid, s in scores.items()}
    grams = capture_grams(model, analysis, fit, provider="cpu", seed=args.seed)
    refit = PlanRefit(model, analysis, grams)
    judges = {}
    for count in (args.search_images, 2 * args.search_images):
        chosen = fit.take(count, seed=args.seed)
        batches = [b.inputs for b in chosen.batches(count)]
        labels = np.concatenate([b.labels for b in chosen.batches(count)])
        layers = measured_layers(model, analysis)
        sequential = SequentialEvaluator(model, analysis, batches, layers, seed=args.seed)
        for reward in ("accuracy", "agreement", "entropy", "refit"):
            judges[f"sequential {count}, {reward}"] = Judge(
                model, analysis, batches, labels, reward, "cpu", evaluator=sequential
            )
        if count == args.search_images:
            closed = ReconstructedEvaluator(model, analysis, refit, batches, provider="cpu")
            judges[f"closed form {count}, accuracy"] = Judge(
                model, analysis, batches, labels, "accuracy", "cpu", evaluator=closed
            )
            judges[f"masked {count}, accuracy"] = Judge(model, analysis, batches, labels, "accuracy", "cpu")
    judges["closed-form refit loss"] = lambda kept: -refit.loss(kept)
    rows = []
    for target_text in args.targets.split(","):
        budget = Budget(macs=parse_fraction(target_text, "--targets"), floor=0.0, alignment=args.align)
        selector = Selector(analysis, PlanCostModel(model, analysis), budget)
        for index, kept in enumerate(random_plans(selector, scores, args.plans, args.seed, args.align)):
            row = {"target": target_text, "plan": index}
            for label, judge in judges.items():
                start = time.perf_counter()
                row[label] = judge(kept)
                row[label + " s"] = time.perf_counter() - start
            plan = PruningPlan(model_sha256=analysis.model_sha256, kept=kept, strategy="random", seed=args.seed)
            rebuilt, _ = reconstruct(model, apply_plan(model, analysis, plan), analysis, plan, fit, provider="cpu")
            row["truth"] = compare(model, rebuilt, data.test, batch_size=500, provider="cpu").accuracy_pruned
            rows.append(row)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    print(f"\n{name}: Spearman rank correlation with the true accuracy ({args.test_images} test images)")
    for label in judges:
        per = []
        for target_text in args.targets.split(","):
            mine = [r for r in rows if r["target"] == target_text]
            per.append(f"{target_text} {spearman([r[label] for r in mine], [r['truth'] for r in mine]):+.3f}")
        pooled = spearman([r[label] for r in rows], [r["truth"] for r in rows])
        seconds = np.mean([r[label + " s"] for r in rows])
        print(f"  {label}: {', '.join(per)}; all {pooled:+.3f}; {seconds * 1000:.0f} ms per plan")
    return {"rows": rows}


if __name__ == "__main__":
    raise SystemExit(main())
