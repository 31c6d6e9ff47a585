"""The semiotic strategy against the MI ranker and the uniform baseline: accuracy after pruning, and time.

    python benchmarks/semiotic_strategy.py --model edgeprune/reference/resnet20_fmnist.onnx --target 0.5

Calibration (scoring, the semiotic curve measurements, reconstruction) uses images of the Fashion-MNIST
TRAINING split; accuracy is measured on the TEST split. Prints a markdown table (and writes it with --out).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import experiment  # noqa: E402

VARIANTS = {
    "semiotic": ("semiotic", {}),
    "semiotic-32": ("semiotic", {"images": 32}),
    "semiotic-per-mac": ("semiotic", {"per_mac": True}),
    "semiotic-levels": ("semiotic", {"distance": "levels"}),
    "semiotic-lazy": ("semiotic", {"lazy": True}),
    "mi": ("mi", {}),
    "uniform": ("uniform", {}),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="edgeprune/reference/resnet20_fmnist.onnx")
    parser.add_argument("--target", type=float, default=0.5, help="MAC fraction to keep")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--calib-images", type=int, default=512)
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--criterion", default="aura-mi", help="the per-channel criterion of every method")
    parser.add_argument("--out")
    args = parser.parse_args(argv)

    from onnx_graphsurgeon.logger import G_LOGGER

    from edgeprune.cost import PlanCostModel, model_cost
    from edgeprune.evaluate import compare
    from edgeprune.pipeline import StageClock, prune_to_budget
    from edgeprune.settings import OptimizeSettings
    from edgeprune.selection import Budget, Selector
    from edgeprune.semiotic.settings import SemioticSettings

    G_LOGGER.severity = G_LOGGER.ERROR
    data = experiment(args.model, args.calib_images, args.test_images, args.seed)
    model, analysis, fit, test = data.model, data.analysis, data.fit, data.test
    fit_source, test_source = data.fit_source, data.test_source
    original = compare(model, model, test, batch_size=256, provider="cpu").accuracy_original
    budget = Budget(macs=args.target)
    selector = Selector(analysis, PlanCostModel(model, analysis), budget)
    rows = []
    for name in args.variants.split(","):
        strategy, settings = VARIANTS[name]
        config = OptimizeSettings.from_dict({"seed": args.seed, "provider": "cpu",
                                             "scoring": {"criterion": args.criterion},
                                             "selection": {"strategy": strategy}})
        config = replace(config, selection=replace(config.selection, semiotic=SemioticSettings(**settings)))
        timings: dict[str, float] = {}
        start = time.perf_counter()
        outcome = prune_to_budget(model, analysis, selector, fit, fit, config, clock=StageClock(timings))
        seconds = time.perf_counter() - start
        plain = compare(model, outcome.pruned, test, batch_size=256, provider="cpu")
        rebuilt = compare(model, outcome.final, test, batch_size=256, provider="cpu")
        kept = model_cost(outcome.final).macs / model_cost(model).macs
        rows.append((name, kept, plain.accuracy_pruned, rebuilt.accuracy_pruned, rebuilt.agreement,
                     timings.get("select", 0.0), seconds))
        print(f"done: {name}: {plain.accuracy_pruned:.4f} -> {rebuilt.accuracy_pruned:.4f} "
              f"(select {timings.get('select', 0.0):.1f} s)", flush=True)
    lines = [f"Model `{args.model}`: test accuracy {original:.2%} on {test.count:,} images ({test_source}); "
             f"target {args.target:.0%} of the MACs; criterion {args.criterion}.",
             f"Calibration: {args.calib_images} images from the {fit_source}, seed {args.seed}; no training.", "",
             "| method | MACs kept | accuracy, no reconstruction | accuracy, reconstructed | top-1 agreement | "
             "select s | total s |", "|---|---|---|---|---|---|---|"]
    for name, kept, plain, rebuilt, agree, select, total in rows:
        lines.append(f"| {name} | {kept:.1%} | {plain:.2%} | {rebuilt:.2%} | {agree:.2%} | {select:.1f} | {total:.1f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
