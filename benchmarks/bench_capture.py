"""Capture and scoring cost, and memory, on a reference model: one run, ratios, medians.

    python benchmarks/bench_capture.py --model edgeprune/reference/resnet20_fmnist.onnx

- capture time (ONNX Runtime with every capture point as an extra output) against a plain inference pass
  over the same images (target: at most 1.5x);
- scoring time against capture time (target: at most 0.5x), for the default refit-error criterion (the
  consumers' Gram sums and the greedy removal) and for aura-mi (streaming aura statistics on the default
  anchor grid, and at every site);
- peak memory of a full capture with 256 and with 2048 images, each in a fresh process, for both criteria
  (it must not grow with the number of images beyond one batch);
- aura-entropy throughput against a naive numpy implementation (from bench_aura.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import calibration_set, split_arrays  # noqa: E402


def _median_pass(runner, data, batch: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for item in data.batches(batch):
            runner(item.inputs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timing(model_path: str, images: int, batch: int, repeat: int) -> dict:
    from edgeprune.analysis import analyze
    from edgeprune.capture import ActivationRunner, capture_points, capture_stats
    from edgeprune.capture.grams import capture_grams, linear_consumers
    from edgeprune.graph import load_model
    from edgeprune.runtime import create_session
    from edgeprune.scoring.removal import removal_scores

    model = load_model(model_path)
    analysis = analyze(model)
    x, y, _ = split_arrays("test", images, 0)
    data = calibration_set(model, x, y)
    points = capture_points(model, analysis)
    names = [p.tensor for p in points] + [p.next_tensor for p in points if p.next_tensor] + list(model.output_names)
    consumers = linear_consumers(model, analysis)
    plain = create_session(model.serialized(), "cpu")
    runners = {"aura": ActivationRunner(model, names, "cpu"),
               "refit": ActivationRunner(model, [c.input for c in consumers], "cpu")}
    first = next(iter(data.batches(batch))).inputs
    for _ in range(2):  # warm-up, then interleave so all see the same machine
        plain.run(None, first)
        for runner in runners.values():
            runner.run(first)
    times: dict[str, list[float]] = {"plain": [], "aura": [], "refit": []}
    for _ in range(repeat):
        times["plain"].append(_median_pass(lambda f: plain.run(None, f), data, batch, 1))
        for key, runner in runners.items():
            times[key].append(_median_pass(runner.run, data, batch, 1))
    refit, sampled, exact = [], [], []
    for _ in range(repeat):  # the scoring work of each criterion, interleaved
        grams = capture_grams(model, analysis, data, batch_size=batch, provider="cpu")
        start = time.perf_counter()
        for group in analysis.prunable_groups:
            removal_scores(grams, analysis, group)
        refit.append((grams.seconds["statistics"], time.perf_counter() - start))
        sampled.append(capture_stats(model, analysis, data, batch_size=batch, provider="cpu").seconds["statistics"])
        exact.append(capture_stats(model, analysis, data, batch_size=batch, provider="cpu", stride=1).seconds["statistics"])
    gram_s, removal_s = (statistics.median(r[i] for r in refit) for i in (0, 1))
    return {"images": images, "points": len(points), "consumers": len(consumers),
            "plain_s": statistics.median(times["plain"]), "capture_s": statistics.median(times["aura"]),
            "refit_capture_s": statistics.median(times["refit"]), "gram_s": gram_s, "removal_s": removal_s,
            "statistics_s": statistics.median(sampled), "exact_statistics_s": statistics.median(exact)}


def peak_memory(model_path: str, images: int, batch: int, criterion: str) -> tuple[float, float]:
    """Peak resident memory (MiB) of a fresh process before and after it measures ``criterion``'s statistics
    over ``images`` images. Read from VmHWM, which starts afresh with the process (getrusage's maximum
    would carry over the size of this, larger, process that started it)."""
    capture = ("from edgeprune.capture.grams import capture_grams as run;" if criterion == "refit-error"
               else "from edgeprune.capture import capture_stats as run;")
    code = (
        "import sys, json; sys.path.insert(0, 'benchmarks');"
        "from _data import calibration_set, split_arrays;"
        "from edgeprune.graph import load_model; from edgeprune.analysis import analyze;"
        f"{capture}"
        "hwm = lambda: int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024;"
        f"m = load_model({model_path!r}); a = analyze(m); x, y, _ = split_arrays('test', {images}, 1);"
        "d = calibration_set(m, x, y); del x, y; base = hwm();"
        f"run(m, a, d, batch_size={batch}, provider='cpu');"
        "print(json.dumps([base, hwm()]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    base, peak = json.loads(result.stdout.strip().splitlines()[-1])
    return base, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="edgeprune/reference/resnet20_fmnist.onnx")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    from onnx_graphsurgeon.logger import G_LOGGER

    G_LOGGER.severity = G_LOGGER.ERROR
    t = timing(args.model, args.images, args.batch, args.repeat)
    print(f"model {args.model}, {t['images']} images, batch {args.batch}, {t['points']} capture points, "
          f"{t['consumers']} linear consumers (CPU)")
    refit_scoring = t["gram_s"] + t["removal_s"]
    print("| measure | seconds | ratio | target |")
    print("|---|---|---|---|")
    print(f"| plain inference pass | {t['plain_s']:.3f} | 1.00 | |")
    print(f"| capture pass, refit-error (the consumers' inputs) | {t['refit_capture_s']:.3f} | "
          f"{t['refit_capture_s'] / t['plain_s']:.2f} x plain | <= 1.5 |")
    print(f"| scoring, refit-error (default): Gram sums {t['gram_s']:.3f} + greedy removal {t['removal_s']:.3f} | "
          f"{refit_scoring:.3f} | {refit_scoring / t['refit_capture_s']:.2f} x capture | <= 0.5 |")
    print(f"| capture pass, aura-mi (maps and the consumers' outputs) | {t['capture_s']:.3f} | "
          f"{t['capture_s'] / t['plain_s']:.2f} x plain | <= 1.5 |")
    print(f"| scoring, aura-mi (MI on a grid of anchor sites) | {t['statistics_s']:.3f} | "
          f"{t['statistics_s'] / t['capture_s']:.2f} x capture | <= 0.5 |")
    print(f"| scoring, aura-mi at every site (stride 1) | {t['exact_statistics_s']:.3f} | "
          f"{t['exact_statistics_s'] / t['capture_s']:.2f} x capture | |")
    for criterion in ("refit-error", "aura-mi"):
        (base, small), (_, large) = (peak_memory(args.model, n, args.batch, criterion) for n in (256, 2048))
        print(f"| peak memory, {criterion}, 256 images | {small:.0f} MiB ({base:.0f} before the capture) | | |")
        print(f"| peak memory, {criterion}, 2048 images | {large:.0f} MiB | {large / small:.2f} x | ~1.0 |")
    from bench_aura import entropy_table

    print("\naura entropy throughput (batch 128):")
    entropy_table(128, 3)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
