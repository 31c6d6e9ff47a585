"""Accuracy after pruning without training: the default, the MI ranker, and the uniform and l1 baselines.

    python benchmarks/compare_strategies.py --model edgeprune/reference/resnet20_fmnist.onnx --targets 0.5,0.2

Calibration (scoring and reconstruction) uses images from the Fashion-MNIST TRAINING split; accuracy is
measured on the TEST split, which the calibration never sees. Prints a markdown table (and writes it
with --out).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import experiment  # noqa: E402

# (strategy, criterion, per-group normalisation of the global ranking, label)
METHODS = (
    ("mi", "refit-error", "mean", "global ranking, refit-error, mean-normalised (default)"),
    ("mi", "refit-error", "none", "global ranking, refit-error, raw scores"),
    ("uniform", "refit-error", "mean", "uniform, refit-error inside layers"),
    ("mi", "aura-mi", "mean", "MI ranker, aura-mi, mean-normalised"),
    ("mi", "l1", "mean", "global ranking, l1, mean-normalised"),
    ("uniform", "l1", "mean", "uniform, l1 inside layers"),
    ("mi", "random", "mean", "global ranking, random scores"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="edgeprune/reference/resnet20_fmnist.onnx")
    parser.add_argument("--targets", default="0.5,0.2", help="MAC fractions to keep")
    parser.add_argument("--calib-images", type=int, default=512)
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--align", type=int, help="channel-count step [default: host's, as optimize uses]")
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)

    from onnx_graphsurgeon.logger import G_LOGGER

    from edgeprune.cost import PlanCostModel, model_cost
    from edgeprune.evaluate import compare
    from edgeprune.pipeline import prune_to_budget
    from edgeprune.settings import OptimizeSettings
    from edgeprune.selection import Budget, Selector

    G_LOGGER.severity = G_LOGGER.ERROR
    if args.align is None:
        from edgeprune.hardware import resolve_device

        args.align = resolve_device("host").alignment
    data = experiment(args.model, args.calib_images, args.test_images, args.seed)
    model, analysis, fit, test = data.model, data.analysis, data.fit, data.test
    fit_source, test_source = data.fit_source, data.test_source
    baseline = compare(model, model, test, batch_size=256, provider="cpu")
    rows = []
    for target in (float(t) for t in args.targets.split(",")):
        budget = Budget(macs=target, alignment=args.align)
        selector = Selector(analysis, PlanCostModel(model, analysis), budget)
        for strategy, criterion, normalisation, label in METHODS:
            config = OptimizeSettings.from_dict({
                "seed": args.seed, "provider": "cpu", "scoring": {"criterion": criterion},
                "selection": {"strategy": strategy, "normalise": normalisation}})
            start = time.perf_counter()
            outcome = prune_to_budget(model, analysis, selector, fit, fit, config)
            seconds = time.perf_counter() - start
            plain = compare(model, outcome.pruned, test, batch_size=256, provider="cpu")
            rebuilt = compare(model, outcome.final, test, batch_size=256, provider="cpu")
            kept = model_cost(outcome.final).macs / model_cost(model).macs
            rows.append((target, kept, label, plain.accuracy_pruned, rebuilt.accuracy_pruned, rebuilt.agreement, seconds))
            print(f"done: {target} {label}: {plain.accuracy_pruned:.4f} -> {rebuilt.accuracy_pruned:.4f}", flush=True)
    table = _table(args, baseline.accuracy_original, rows, fit_source, test_source, test.count)
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table + "\n", encoding="utf-8")
    return 0


def _table(args, original: float, rows, fit_source: str, test_source: str, tests: int) -> str:
    lines = [
        f"Model `{args.model}`: test accuracy {original:.2%} on {tests:,} images ({test_source}).",
        f"Calibration: {args.calib_images} images from the {fit_source}, seed {args.seed}; channel counts in steps "
        f"of {args.align}; no training after pruning.",
        "",
        "| MACs kept (target) | MACs kept | method | accuracy, no reconstruction | accuracy, reconstructed | drop (points) | top-1 agreement | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for target, kept, label, plain, rebuilt, agree, seconds in rows:
        lines.append(f"| {target:.0%} | {kept:.1%} | {label} | {plain:.2%} | {rebuilt:.2%} | "
                     f"{(original - rebuilt) * 100:.2f} | {agree:.2%} | {seconds:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
