"""Allocation at 2x, 5x and 10x: how many channels each group keeps, by each strategy, after reconstruction.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 nice python benchmarks/bench_allocation.py \
        --models resnet20_fmnist --targets 2x,5x,10x --aligns 1,8 --json out.json --out table.md

Rows: the l1 baselines (uniform, global ranking), the default before this benchmark (mi: the global ranking
of refit-error scores, mean-normalised), the knapsack (refit-error), and the RL agent once per reward, its
plans judged as reconstruction would leave them (channels inside a group by refit-error), and the semiotic
greedy with its curves measured masked and as reconstruction would leave them. Calibration
(scoring, search, reconstruction): 512 images of the Fashion-MNIST TRAIN split; validation: other train
images (``--validation-images``, disjoint from calibration), on which the default is chosen; test: the
TEST split (10,000 images), reported. Align 1 is ``--align 1`` (counts free); align 8 the host's default
(its alignment and the default floor give way when they forbid the budget). Scores are measured once per
model and criterion; "search s" is the strategy alone, "total s" selection, surgery, proof and
reconstruction. One process, one thread (`_splits.single_thread`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _splits import single_thread, splits  # noqa: E402

REWARDS = ("entropy", "accuracy", "agreement", "refit")


def methods(
    episodes: int, warmup: int | None = None, rewards=REWARDS, refit_images: int | None = None, lazy: bool = False
):
    """(label, strategy, criterion, the strategy's settings or None) of every row; ``refit_images``: the
    reconstructed semiotic judge's (None: its default, 64), named in the row's label when given; ``lazy``:
    the semiotic rows with lazy steps (", lazy" in their labels)."""
    from edgeprune.search.settings import AgentSettings, SearchSettings
    from edgeprune.semiotic.settings import SemioticSettings

    agent = AgentSettings() if warmup is None else AgentSettings(warmup=warmup)

    rows = [
        ("uniform, l1", "uniform", "l1", None),
        ("global ranking, l1", "mi", "l1", None),
        ("mi + refit-error (old default)", "mi", "refit-error", None),
        ("knapsack", "knapsack", "refit-error", None),
    ]
    for reward in rewards:
        search = SearchSettings(reward=reward, episodes=episodes, agent=agent)
        rows.append((f"rl, {reward} reward", "rl", "refit-error", search))
    steps = ", lazy" if lazy else ""
    masked = SemioticSettings(judge="masked", lazy=lazy)
    rows.append((f"semiotic, masked judge{steps}", "semiotic", "refit-error", masked))
    if refit_images is None:
        rows.append((f"semiotic, reconstructed judge{steps}", "semiotic", "refit-error", SemioticSettings(lazy=lazy)))
    else:
        label = f"semiotic, reconstructed judge, {refit_images} refit images{steps}"
        settings = SemioticSettings(refit_images=refit_images, lazy=lazy)
        rows.append((label, "semiotic", "refit-error", settings))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20_fmnist,vgg_fmnist,mobilenet_v2_fmnist")
    parser.add_argument("--targets", default="2x,5x,10x")
    parser.add_argument("--aligns", default="1,8")
    parser.add_argument("--calib-images", type=int, default=512)
    parser.add_argument("--validation-images", type=int, default=5000)
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--warmup", type=int, help="rl warm-up episodes [default: the agent's, 100]")
    parser.add_argument("--semiotic-refit-images", type=int, help="the reconstructed semiotic judge's [default: 64]")
    parser.add_argument("--semiotic-lazy", action="store_true", help="the semiotic rows with lazy steps")
    parser.add_argument("--only", help="row labels to run, separated by semicolons (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write (update) every row here")
    parser.add_argument("--out", help="append the tables to this markdown file")
    args = parser.parse_args(argv)
    single_thread()
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("edgeprune.search.rl").setLevel(logging.INFO)
    logging.getLogger("edgeprune.semiotic.strategy").setLevel(logging.INFO)  # steps and curve measurements
    from onnx_graphsurgeon.logger import G_LOGGER

    from edgeprune.reference import model_path

    G_LOGGER.severity = G_LOGGER.ERROR
    found = json.loads(Path(args.json).read_text()) if args.json and Path(args.json).exists() else {}
    for name in args.models.split(","):
        rows = run_model(args, name, model_path(name), found)
        table = _table(name, rows, found[name]["original"])
        print(table, flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as handle:
                handle.write(table + "\n\n")
    return 0


def run_model(args, name: str, path, found: dict) -> list[dict]:
    from edgeprune.cost import PlanCostModel, model_cost
    from edgeprune.evaluate import compare
    from edgeprune.selection import Budget, Selector, parse_fraction
    from edgeprune.settings import OptimizeSettings
    from edgeprune.stages import StageClock, cut, score_channels

    data = splits(path, args.calib_images, args.validation_images, args.test_images, args.seed)
    model, analysis, fit = data.model, data.analysis, data.fit
    original = {
        split: compare(model, model, getattr(data, split), batch_size=500, provider="cpu").accuracy_original
        for split in ("validation", "test")
    }
    costs, scored = PlanCostModel(model, analysis), {}
    only = set(args.only.split(";")) if args.only else None
    rows = found.setdefault(name, {"original": original, "rows": []})["rows"]
    done = {(r["target"], r["align"], r["method"]) for r in rows}
    for align in (int(a) for a in args.aligns.split(",")):
        for target in args.targets.split(","):
            budget = Budget(
                macs=parse_fraction(target, "--targets"), alignment=align, relax_floor=True, relax_alignment=align > 1
            )
            selector = Selector(analysis, costs, budget)
            for label, strategy, criterion, search in methods(
                args.episodes, args.warmup, refit_images=args.semiotic_refit_images, lazy=args.semiotic_lazy
            ):
                if (only and label not in only) or (target, align, label) in done:
                    continue
                settings = OptimizeSettings.from_dict(
                    {"seed": args.seed, "provider": "cpu", "scoring": {"criterion": criterion},
                     "selection": {"strategy": strategy}}
                )
                if search is not None:  # the strategy's own table: [selection.rl] or [selection.semiotic]
                    settings = replace(settings, selection=replace(settings.selection, **{strategy: search}))
                if criterion not in scored:
                    scored[criterion] = score_channels(model, analysis, fit, settings)
                scores, scoring = scored[criterion]
                timings: dict[str, float] = {}
                start = time.perf_counter()
                outcome = cut(model, analysis, selector, scores, scoring, fit, fit, settings, clock=StageClock(timings))
                total = time.perf_counter() - start
                judged = {
                    split: compare(model, outcome.final, getattr(data, split), batch_size=500, provider="cpu")
                    for split in ("validation", "test")
                }
                row = {
                    "target": target, "align": align, "method": label,
                    "macs_kept": model_cost(outcome.final).macs / model_cost(model).macs,
                    "floor": selector.budget.floor, "fine": selector.budget.fine,
                    "validation": judged["validation"].accuracy_pruned, "test": judged["test"].accuracy_pruned,
                    "agreement_test": judged["test"].agreement,
                    "search_s": timings.get("select", 0.0), "total_s": total,
                    "episodes": getattr(search, "episodes", None),
                    "counts": [len(outcome.plan.kept.get(g.id, range(g.channels))) for g in analysis.prunable_groups],
                }
                rows.append(row)
                print(f"done: {name} {target} align {align} {label}: validation {row['validation']:.4f} "
                      f"test {row['test']:.4f} search {row['search_s']:.1f}s", flush=True)
                if args.json:
                    Path(args.json).write_text(json.dumps(found, indent=1))
    return rows


def _table(name: str, rows: list[dict], original: dict) -> str:
    lines = [
        f"Model `{name}`: validation accuracy {original['validation']:.2%}, test accuracy {original['test']:.2%}.",
        "",
        "| MACs | align | MACs kept | method | validation | test | test drop (points) | search s | total s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['target']} | {r['align']} | {r['macs_kept']:.1%} | {r['method']} | {r['validation']:.2%} | "
            f"{r['test']:.2%} | {(original['test'] - r['test']) * 100:.2f} | {r['search_s']:.1f} | {r['total_s']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
