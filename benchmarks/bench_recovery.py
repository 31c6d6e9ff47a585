"""Recovery benchmark: test accuracy after reconstruction, after distillation, and after the progressive
schedule, on the Fashion-MNIST reference models at 2x, 5x and 10x fewer MACs.

    python benchmarks/bench_recovery.py [--models resnet20_fmnist,vgg_fmnist,mobilenet_v2_fmnist]
        [--targets 0.5,0.2,0.1] [--aligns 1,8] [--out benchmarks/results/recovery.json]

Per model, alignment and target (rows already in --out are reused, so an interrupted run resumes):
- ``reconstructed``: the default optimize stages (refit-error, mi ranker, floor 0.05 so that 10x is
  reachable) with least-squares reconstruction on 1,000 train-split images, no training;
- ``finetune-labels``: plus `distill` for the recipe every tool gets (benchmarks/_recipe.py: one epoch over
  the 60,000 labelled train images, SGD 0.01 cosine, batch 128, gradient norm clipped to 1);
- ``distill-5k-unlabelled``: plus label-free distillation on 5,000 unlabelled train images for the same
  number of steps (12 epochs of 5,000), no labels anywhere (the held-out choice uses agreement);
- ``finetune-labels-clip5`` (on request, ``--rows``): the labelled epoch with distill's defaults (gradient
  norm clipped to 5, no weight decay: what a validation split of the train images preferred);
- ``progressive-3`` (10x only): three cuts (46%, 22%, 10%), each reconstructed and distilled for a third of
  the labelled epoch, so the same training budget as ``finetune-labels``.
The held-out split that picks the weights kept is 200 of the 1,000 calibration images (never trained on).
Accuracy is on the full 10,000 test images; wall time per row includes pruning and training.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import REPO, calibration_set, experiment, split_arrays  # noqa: E402

FLOOR = 0.05


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20_fmnist,vgg_fmnist,mobilenet_v2_fmnist")
    parser.add_argument("--targets", default="0.5,0.2,0.1")
    parser.add_argument("--aligns", default="1,8")
    parser.add_argument("--rows", default="reconstructed,finetune-labels,distill-5k-unlabelled,progressive-3")
    parser.add_argument("--train-images", type=int, default=60000)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 when another job shares the cores)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "recovery.json"))
    args = parser.parse_args(argv)
    import torch
    from onnx_graphsurgeon.logger import G_LOGGER

    G_LOGGER.severity = G_LOGGER.ERROR
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else []
    done = {(r["model"], r["align"], r["target"], r["row"]) for r in results}
    folder = Path(tempfile.mkdtemp(prefix="edgeprune-recovery-"))
    for name in args.models.split(","):
        model_path = REPO / "edgeprune" / "reference" / f"{name}.onnx"
        data = experiment(model_path, 1000, 10000, 0)
        fit, held_out = data.fit.split(200, seed=0)
        train_x, train_y, _ = split_arrays("train", args.train_images, 1)
        labelled = calibration_set(data.model, train_x, train_y, folder)
        unlabelled = _unlabelled(data.model, train_x[:5000], folder)
        for align in (int(a) for a in args.aligns.split(",")):
            for target in (float(t) for t in args.targets.split(",")):
                for row in args.rows.split(","):
                    if row == "progressive-3" and target > 0.15 or (name, align, target, row) in done:
                        continue
                    record = _row(row, data, fit, held_out, labelled, unlabelled, align, target)
                    record.update(model=name, align=align, target=target, row=row)
                    print(json.dumps(record), flush=True)
                    results.append(record)
                    _save(out, results)
    from recovery_report import render

    print(render(results, []))
    return 0


def _unlabelled(model, images, folder):
    path = folder / "unlabelled-5k.npz"
    np.savez(path, input=images.astype(np.float32))
    from edgeprune.calibration import load_calibration

    return load_calibration(path, model)


def _row(row, data, fit, held_out, labelled, unlabelled, align, target) -> dict:
    from edgeprune.cost import PlanCostModel, model_cost
    from edgeprune.errors import BudgetError
    from edgeprune.evaluate import compare
    from edgeprune.recovery import distill_outcome
    from edgeprune.settings import OptimizeSettings
    from edgeprune.selection import Budget, Selector
    from edgeprune.stages import prune_to_budget
    from edgeprune.train.settings import DistillSettings

    model, analysis = data.model, data.analysis
    budget = Budget(macs=target, alignment=align, floor=FLOOR)
    selector = Selector(analysis, PlanCostModel(model, analysis), budget)
    start = time.perf_counter()
    try:
        selector.check_reachable({g.id: np.ones(g.channels) for g in analysis.prunable_groups})
    except BudgetError as exc:
        return {"unreachable": str(exc)}
    # the peer recipe (benchmarks/_recipe.py: clip 1, weight decay 5e-4) unless the row asks for the defaults
    recipe = {} if row.endswith("-clip5") else {"clip_norm": 1.0, "weight_decay": 5e-4}
    distill = DistillSettings(epochs=1 / 3 if row == "progressive-3" else 12 if "5k" in row else 1, **recipe)
    steps = 3 if row == "progressive-3" else 1
    recovery = {"finetune-epochs": distill.epochs, "finetune-steps": steps,
                **{key.replace("_", "-"): value for key, value in recipe.items()}}
    config = OptimizeSettings.from_dict({"provider": "cpu", "recovery": recovery if row != "reconstructed" else {}})
    recovery = None
    if steps > 1:
        from edgeprune.progressive import prune_progressively

        outcome, record = prune_progressively(model, analysis, selector, fit, held_out, labelled, config)
        final, recovery = outcome.final, record
    else:
        outcome = prune_to_budget(model, analysis, selector, fit, held_out, config)
        final = outcome.final
        if row != "reconstructed":
            judge = held_out if "labels" in row else _without_labels(held_out)
            train = labelled if "labels" in row else unlabelled
            final, report = distill_outcome(model, analysis, outcome.plan, final, train, judge, distill)
            recovery = report.to_dict()
    seconds = time.perf_counter() - start
    test = compare(model, final, data.test, batch_size=500, provider="cpu")
    return {"macs_kept": model_cost(final).macs / model_cost(model).macs, "accuracy_original": test.accuracy_original,
            "accuracy": test.accuracy_pruned, "drop_points": (test.accuracy_original - test.accuracy_pruned) * 100,
            "seconds": round(seconds, 1),
            "train_seconds": None if recovery is None else _train_seconds(recovery)}


def _without_labels(data):
    from dataclasses import replace

    return replace(data, labels=None)


def _train_seconds(recovery: dict) -> float:
    if "final" in recovery:  # the progressive schedule: one record per cut
        return round(sum(s["recovery"]["seconds"] for s in recovery["steps"]), 1)
    return recovery["seconds"]


def _save(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())
