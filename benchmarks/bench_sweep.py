"""Time of one `edgeprune sweep` against the same number of separate `optimize` runs, on the bundled ResNet-20.

    python benchmarks/bench_sweep.py [--targets 0.8,0.6,0.5,0.4,0.3,0.2] [--limit 200] [--rounds 1]

Both go through the same Python entry points in one process (no interpreter start-up counted), with the
same settings: the sweep captures and scores once, each optimize run loads, captures and scores again. The
two alternate, ``--rounds`` times each, and the medians are compared (this machine's timings drift by tens
of percent from minute to minute). Each optimize run measures latency on the host as each sweep point does
(``--latency-rounds``). Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "edgeprune" / "reference" / "resnet20_fmnist.onnx"
IMAGES = ROOT / "calibration" / "fashion-mnist"


def settings(out: Path, limit: int, rounds: int, target: float | None = None):
    from edgeprune.settings import OptimizeSettings

    tree = {
        "model": str(MODEL),
        "calibration": {"calib": str(IMAGES), "preset": "fashion-mnist", "limit": limit},
        "latency": {"device": "jetson", "latency-rounds": rounds},
        "output": {"out": str(out)},
    }
    if target is not None:
        tree["budget"] = {"target-flops": target}
    return OptimizeSettings.from_dict(tree)


def one_sweep(scratch: Path, targets, limit: int, rounds: int) -> tuple[float, list[dict]]:
    from edgeprune.reporting.sweep import run_sweep

    start = time.perf_counter()
    result = run_sweep(settings(scratch / f"sweep-{time.monotonic_ns()}", limit, rounds), targets)
    return time.perf_counter() - start, result.section["points"]


def separate_runs(scratch: Path, targets, limit: int, rounds: int) -> tuple[float, list[dict]]:
    from edgeprune.pipeline import optimize

    start = time.perf_counter()
    reports = []
    for target in targets:
        out = scratch / f"optimize-{target}-{time.monotonic_ns()}"
        reports.append(optimize(settings(out, limit, rounds, target)).report)
    return time.perf_counter() - start, [dict(r.final_comparison) for r in reports]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="0.8,0.6,0.5,0.4,0.3,0.2")
    parser.add_argument("--limit", type=int, default=200, help="calibration images (a fifth held out)")
    parser.add_argument("--latency-rounds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    from edgeprune.reporting.sweep import parse_targets

    targets = parse_targets(args.targets)
    sweeps, runs = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.rounds):
            seconds, points = one_sweep(Path(scratch), targets, args.limit, args.latency_rounds)
            sweeps.append(seconds)
            seconds, judged = separate_runs(Path(scratch), targets, args.limit, args.latency_rounds)
            runs.append(seconds)
    sweep_s, runs_s = statistics.median(sweeps), statistics.median(runs)
    print(
        f"ResNet-20 reference model, {len(targets)} MAC targets ({args.targets}), {args.limit} calibration images, "
        f"device jetson, {args.latency_rounds} latency rounds, {args.rounds} round(s) each, alternating"
    )
    print("| what | seconds (median) | per point |")
    print("|---|---|---|")
    print(f"| one sweep | {sweep_s:.1f} | {sweep_s / len(targets):.1f} |")
    print(f"| {len(targets)} separate optimize runs | {runs_s:.1f} | {runs_s / len(targets):.1f} |")
    print(f"| ratio (separate / sweep) | {runs_s / sweep_s:.2f}x | |")
    print("| target | sweep: drop (points) | optimize: drop (points) |")
    print("|---|---|---|")
    for target, point, comparison in zip(targets, points, judged):
        print(f"| {target:g} | {point['drop_points']:.2f} | {comparison['drop_points']:.2f} |")


if __name__ == "__main__":
    main()
