"""How well the search's plan evaluators rank plans against the truth (the pruned and reconstructed model).

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 nice python benchmarks/bench_evaluator_rank.py \
        --models resnet20_fmnist --targets 5x,10x --plans 30 --json out.json

For each reference model and MAC target: ``--plans`` random allocations (per-group keep ratios drawn in
[0.1, 1], then scaled together to meet the target; channels inside a group by refit-error), each judged by
every evaluator the search can use, and truly pruned, reconstructed (on all the calibration images, the
run's defaults) and measured on the test split (10,000 images: the truth must be much less noisy than the
differences between plans at one budget). Printed: Spearman's rank correlation between each figure and the
true accuracy, over the plans of one target and over all targets together, and each evaluator's time.

Evaluators: ``sequential F/J`` (`SequentialEvaluator`: refit from F calibration images, outputs judged on J
others, one pass), ``closed form`` (`ReconstructedEvaluator`: the closed-form refit from the Gram statistics
of the original network, in one ONNX Runtime session), ``masked`` (before any reconstruction). Measures of
the judged outputs: top-1 accuracy and agreement with the original, their smooth forms (the mean
probability of the label, of the original's class), minus the KL divergence from the original's outputs,
the entropy reward, and the refit loss (`refit` reward; ``closed-form refit loss``: `PlanRefit.loss`).
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
    """Spearman's rho: Pearson's correlation of the ranks (ties averaged)."""
    from scipy.stats import rankdata

    ra, rb = rankdata(a), rankdata(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def random_plans(selector, scores, count: int, seed: int, alignment: int):
    """``count`` plans at the selector's budget: random per-group ratios in [0.1, 1], all multiplied by the
    largest factor that still meets it."""
    from edgeprune.selection import top_channels, valid_count

    rng = np.random.default_rng(seed)
    groups = selector.analysis.prunable_groups
    plans = []
    while len(plans) < count:
        ratios = rng.uniform(0.1, 1.0, len(groups))

        def plan(t: float, ratios=ratios):
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


def measures(logits, original, labels) -> dict[str, float]:
    """Top-1 and smooth accuracy and agreement, and minus KL(original || pruned), of one plan's outputs."""
    def softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    p, q = softmax(logits.astype(np.float64)), softmax(original.astype(np.float64))
    rows = np.arange(len(p))
    reference = original.argmax(axis=1)
    return {
        "accuracy": float(np.mean(logits.argmax(axis=1) == labels)),
        "agreement": float(np.mean(logits.argmax(axis=1) == reference)),
        "soft accuracy": float(np.mean(p[rows, labels])),
        "soft agreement": float(np.mean(p[rows, reference])),
        "-KL": -float(np.mean(np.sum(q * (np.log(q + 1e-12) - np.log(p + 1e-12)), axis=1))),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20_fmnist,vgg_fmnist,mobilenet_v2_fmnist")
    parser.add_argument("--targets", default="5x,10x")
    parser.add_argument("--plans", type=int, default=30)
    parser.add_argument("--calib-images", type=int, default=512)
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--fit-images", default="256", help="F of each sequential evaluator (rl's: 256)")
    parser.add_argument("--judge-images", default="256",
                        help="J of each: images judged, none of them fitted (0: judged on the F images themselves)")
    parser.add_argument("--align", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write every plan's figures here")
    parser.add_argument("--truth-from", help="a --json file of an earlier run with the same plans: reuse its truths")
    args = parser.parse_args(argv)
    args.judge_images = [int(j) for j in args.judge_images.split(",")]
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


def evaluators(args, model, analysis, fit):
    """name -> (evaluator, labels of the judged images) for every evaluator compared."""
    from edgeprune.capture.grams import capture_grams
    from edgeprune.scoring.plan_refit import PlanRefit
    from edgeprune.search.evaluator import MaskedEvaluator
    from edgeprune.search.judge import measured_layers
    from edgeprune.search.reconstructed import ReconstructedEvaluator
    from edgeprune.search.sequential import SequentialEvaluator

    layers = measured_layers(model, analysis)
    fitted, judged = fit.split(max(max(args.judge_images), 1), seed=args.seed)
    found = {}
    for count, judging in zip((int(c) for c in args.fit_images.split(",")), args.judge_images):
        if judging == 0:  # judged on the very images it refits from: all the calibration images, as the truth
            own = next(iter(fit.take(count, seed=args.seed).batches(count)))
            evaluator = SequentialEvaluator(model, analysis, [own.inputs], layers, seed=args.seed)
            found[f"sequential {count} (judged on them)"] = evaluator, own.labels
            continue
        judge = next(iter(judged.take(judging, seed=args.seed).batches(judging)))
        rows = fitted.take(count, seed=args.seed)
        batches = [b.inputs for b in rows.batches(count)] + [judge.inputs]
        evaluator = SequentialEvaluator(
            model, analysis, batches, layers, seed=args.seed, fit_images=count, judge_images=judging
        )
        found[f"sequential {count}/{judging}"] = evaluator, judge.labels
    judging = next(j for j in args.judge_images if j)
    judge = next(iter(judged.take(judging, seed=args.seed).batches(judging)))
    refit = PlanRefit(model, analysis, capture_grams(model, analysis, fit, provider="cpu", seed=args.seed))
    found["closed form"] = ReconstructedEvaluator(model, analysis, refit, [judge.inputs], layers, provider="cpu"), judge.labels
    found["masked"] = MaskedEvaluator(model, analysis, [judge.inputs], layers, provider="cpu"), judge.labels
    return found, refit


def run_model(args, name: str, path) -> dict:
    from edgeprune.cost import PlanCostModel
    from edgeprune.evaluate import compare
    from edgeprune.reconstruct import reconstruct
    from edgeprune.scoring.measure import measure_and_score
    from edgeprune.search.judge import Judge
    from edgeprune.selection import Budget, Selector, parse_fraction
    from edgeprune.surgery import PruningPlan, apply_plan

    data = splits(path, args.calib_images, 0, args.test_images, args.seed)
    model, analysis, fit = data.model, data.analysis, data.fit
    scores, _ = measure_and_score(model, analysis, fit, "refit-error", provider="cpu", seed=args.seed)
    scores = {gid: s.scores for gid, s in scores.items()}
    found, refit = evaluators(args, model, analysis, fit)
    output = model.output_names[0]
    originals = {label: ev.evaluate({})[0][output] for label, (ev, _) in found.items()}
    entropy = {label: Judge(model, analysis, [], y, "entropy", evaluator=ev) for label, (ev, y) in found.items()}
    rows = []
    earlier = json.loads(Path(args.truth_from).read_text())[name]["rows"] if args.truth_from else []
    for target_text in args.targets.split(","):
        budget = Budget(macs=parse_fraction(target_text, "--targets"), floor=0.0, alignment=args.align)
        selector = Selector(analysis, PlanCostModel(model, analysis), budget)
        for index, kept in enumerate(random_plans(selector, scores, args.plans, args.seed, args.align)):
            row = {"target": target_text, "plan": index}
            for label, (evaluator, labels) in found.items():
                start = time.perf_counter()
                result = evaluator.evaluate(kept)
                row[f"{label} s"] = time.perf_counter() - start
                for measure, value in measures(result[0][output], originals[label], labels).items():
                    row[f"{label}, {measure}"] = value
                row[f"{label}, entropy"] = entropy[label].score(kept, result)
                if hasattr(evaluator, "last_errors"):
                    errors = [e for e in evaluator.last_errors.values() if np.isfinite(e)]
                    row[f"{label}, refit"] = -float(np.sum(np.square(errors)))
            row["closed-form refit loss"] = -refit.loss(kept)
            known = [r for r in earlier if (r["target"], r["plan"]) == (target_text, index)]
            if known:
                row["truth"] = known[0]["truth"]
            else:
                plan = PruningPlan(model_sha256=analysis.model_sha256, kept=kept, strategy="random", seed=args.seed)
                start = time.perf_counter()
                rebuilt, _ = reconstruct(model, apply_plan(model, analysis, plan), analysis, plan, fit, provider="cpu")
                row["reconstruct s"] = time.perf_counter() - start
                row["truth"] = compare(model, rebuilt, data.test, batch_size=500, provider="cpu").accuracy_pruned
            rows.append(row)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    summary(name, args, rows)
    return {"rows": rows}


def summary(name: str, args, rows) -> None:
    targets = args.targets.split(",")
    print(f"\n{name}: Spearman rank correlation with the true accuracy ({args.test_images} test images)")
    print("| figure | " + " | ".join(targets) + " | all | ms per plan |")
    print("|---|" + "---|" * (len(targets) + 2))
    for label in [k for k in rows[0] if k not in ("target", "plan", "truth") and not k.endswith(" s")]:
        cells = []
        for target in targets:
            mine = [r for r in rows if r["target"] == target]
            cells.append(f"{spearman([r[label] for r in mine], [r['truth'] for r in mine]):+.2f}")
        pooled = spearman([r[label] for r in rows], [r["truth"] for r in rows])
        evaluator = label.split(",")[0]
        seconds = np.mean([r[f"{evaluator} s"] for r in rows]) if f"{evaluator} s" in rows[0] else float("nan")
        print(f"| {label} | " + " | ".join(cells) + f" | {pooled:+.2f} | {seconds * 1000:.0f} |")


if __name__ == "__main__":
    raise SystemExit(main())
