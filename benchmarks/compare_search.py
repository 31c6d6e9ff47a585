"""Search strategies against the rankers: accuracy after pruning and reconstruction, and the time each search took.

    nice python benchmarks/compare_search.py --models resnet20_fmnist --targets 2x,5x,10x --out docs/results-search.md

Every strategy registered in `edgeprune.selection.STRATEGIES` when the script runs gets a row (the RL agent
once per reward), plus the l1 baselines. Calibration (scoring, search, reconstruction) uses images of the
Fashion-MNIST TRAINING split; accuracy is measured on the TEST split, which no search ever sees. The question
it answers (P2): is the label-free entropy reward on par with the accuracy reward?
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import experiment  # noqa: E402


def methods(episodes: int, search_images: int, variants: bool = False):
    """(label, strategy, criterion, search settings or None) for every row, registered strategies included."""
    from edgeprune.search.settings import SearchSettings
    from edgeprune.selection import STRATEGIES

    rows = [("uniform, l1", "uniform", "l1", None), ("global ranking, l1", "mi", "l1", None),
            ("MI ranker, aura-mi", "mi", "aura-mi", None)]
    for reward in ("entropy", "accuracy", "agreement"):
        settings = SearchSettings(reward=reward, episodes=episodes, search_images=search_images)
        rows.append((f"rl, {reward} reward (l1 inside)", "rl", "l1", settings))
    if variants:
        settings = SearchSettings(episodes=episodes, search_images=search_images, entropy_reference="dead")
        rows.append(("rl, entropy reward, removed maps dead", "rl", "l1", settings))
    for name in STRATEGIES:
        if name not in ("mi", "uniform", "rl"):
            rows.append((f"{name} (aura-mi)", name, "aura-mi", None))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20_fmnist,vgg_fmnist,mobilenet_v2_fmnist")
    parser.add_argument("--targets", default="2x,5x,10x", help="MAC reductions (or fractions to keep)")
    parser.add_argument("--calib-images", type=int, default=512)
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--search-images", type=int, default=64)
    parser.add_argument("--only", help="row labels to run, separated by semicolons (default: all)")
    parser.add_argument("--variants", action="store_true", help="also the rl entropy reward with removed maps dead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write (append) the table to this markdown file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("edgeprune.search.rl").setLevel(logging.INFO)

    from onnx_graphsurgeon.logger import G_LOGGER

    from edgeprune.reference import model_path

    G_LOGGER.severity = G_LOGGER.ERROR
    for name in args.models.split(","):
        table = run_model(args, name, model_path(name))
        print(table, flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as handle:
                handle.write(table + "\n\n")
    return 0


def run_model(args, name: str, path: Path) -> str:
    from edgeprune.cost import PlanCostModel, model_cost
    from edgeprune.evaluate import compare
    from edgeprune.pipeline import StageClock, prune_to_budget
    from edgeprune.settings import OptimizeSettings
    from edgeprune.selection import Budget, Selector, parse_fraction

    data = experiment(path, args.calib_images, args.test_images, args.seed)
    model, analysis, fit, test = data.model, data.analysis, data.fit, data.test
    fit_source, test_source = data.fit_source, data.test_source
    original = compare(model, model, test, batch_size=256, provider="cpu").accuracy_original
    only = set(args.only.split(";")) if args.only else None
    rows = []
    for target_text in args.targets.split(","):
        target = parse_fraction(target_text, "--targets")
        budget = Budget(macs=target)
        selector = Selector(analysis, PlanCostModel(model, analysis), budget)
        for label, strategy, criterion, search in methods(args.episodes, args.search_images, args.variants):
            if only and label not in only:
                continue
            config = OptimizeSettings.from_dict({"seed": args.seed, "provider": "cpu",
                                                 "scoring": {"criterion": criterion},
                                                 "selection": {"strategy": strategy}})
            if search is not None:
                config = replace(config, selection=replace(config.selection, rl=search))
            timings: dict[str, float] = {}
            start = time.perf_counter()
            outcome = prune_to_budget(model, analysis, selector, fit, fit, config, clock=StageClock(timings))
            total = time.perf_counter() - start
            rebuilt = compare(model, outcome.final, test, batch_size=256, provider="cpu")
            kept = model_cost(outcome.final).macs / model_cost(model).macs
            row = (target_text, kept, label, rebuilt.accuracy_pruned, rebuilt.agreement, timings.get("select", 0.0), total)
            rows.append(row)
            print(f"done: {name} {target_text} {label}: {row[3]:.4f} search {row[5]:.1f}s", flush=True)
    return _table(name, args, original, rows, fit_source, test_source, test.count)


def _table(name, args, original: float, rows, fit_source: str, test_source: str, tests: int) -> str:
    lines = [
        f"Model `{name}`: test accuracy {original:.2%} on {tests:,} images ({test_source}). Calibration: "
        f"{args.calib_images} images from the {fit_source}, seed {args.seed}; rl: {args.episodes} episodes judged on "
        f"{args.search_images} of them, top 5 re-ranked by agreement on 128 others; no training after pruning.",
        "",
        "| MAC reduction | MACs kept | method | accuracy, reconstructed | drop (points) | top-1 agreement | search s | total s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for target, kept, label, accuracy, agree, search, total in rows:
        lines.append(f"| {target} | {kept:.1%} | {label} | {accuracy:.2%} | {(original - accuracy) * 100:.2f} | "
                     f"{agree:.2%} | {search:.1f} | {total:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
