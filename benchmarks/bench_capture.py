"""Capture and scoring cost, and memory, on a reference model: one run, ratios, medians.

    python benchmarks/bench_capture.py --model edgeprune/reference/resnet20_fmnist.onnx

- capture time (ONNX Runtime with every capture point as an extra output) against a plain inference pass
  over the same images (target: at most 1.5x);
- scoring time (streaming aura statistics, aura MI) against capture time (target: at most 0.5x), with the
  default anchor grid for the pair statistics and with every site;
- peak memory of a full capture with 256 and with 2048 images, each in a fresh process (it must not grow
  with the number of images beyond one batch);
- aura-entropy throughput against a naive numpy implementation (from bench_aura.py).
"""

from __future__ import annotations

import argparse
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
    from edgeprune.graph import load_model
    from edgeprune.runtime import create_session

    model = load_model(model_path)
    analysis = analyze(model)
    x, y, _ = split_arrays("test", images, 0)
    data = calibration_set(model, x, y)
    points = capture_points(model, analysis)
    names = [p.tensor for p in points] + [p.next_tensor for p in points if p.next_tensor] + list(model.output_names)
    plain = create_session(model.serialized(), "cpu")
    capture = ActivationRunner(model, names, "cpu")
    for _ in range(2):  # warm-up, then interleave so both see the same machine
        plain.run(None, next(iter(data.batches(batch))).inputs)
        capture.run(next(iter(data.batches(batch))).inputs)
    plain_times, capture_times = [], []
    for _ in range(repeat):
        plain_times.append(_median_pass(lambda f: plain.run(None, f), data, batch, 1))
        capture_times.append(_median_pass(capture.run, data, batch, 1))
    sampled, exact = [], []
    for _ in range(repeat):  # the default (pair statistics on a grid of anchors) against every site, interleaved
        sampled.append(capture_stats(model, analysis, data, batch_size=batch, provider="cpu").seconds["statistics"])
        exact.append(capture_stats(model, analysis, data, batch_size=batch, provider="cpu", stride=1).seconds["statistics"])
    return {"images": images, "points": len(points), "plain_s": statistics.median(plain_times),
            "capture_s": statistics.median(capture_times), "statistics_s": statistics.median(sampled),
            "exact_statistics_s": statistics.median(exact)}


def peak_memory(model_path: str, images: int, batch: int) -> float:
    """Peak resident memory (MiB) of a fresh process that runs one full capture over ``images`` images."""
    code = (
        "import resource, sys, json; sys.path.insert(0, 'benchmarks');"
        "from _data import calibration_set, split_arrays;"
        "from edgeprune.graph import load_model; from edgeprune.analysis import analyze;"
        "from edgeprune.capture import capture_stats;"
        f"m = load_model({model_path!r}); a = analyze(m); x, y, _ = split_arrays('test', {images}, 1);"
        "d = calibration_set(m, x, y); del x, y;"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
        f"capture_stats(m, a, d, batch_size={batch}, provider='cpu');"
        "print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


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
    print(f"model {args.model}, {t['images']} images, batch {args.batch}, {t['points']} capture points (CPU)")
    print("| measure | seconds | ratio | target |")
    print("|---|---|---|---|")
    print(f"| plain inference pass | {t['plain_s']:.3f} | 1.00 | |")
    print(f"| capture pass (extra outputs) | {t['capture_s']:.3f} | {t['capture_s'] / t['plain_s']:.2f} x plain | <= 1.5 |")
    print(f"| scoring, default (MI on a grid of anchor sites) | {t['statistics_s']:.3f} | "
          f"{t['statistics_s'] / t['capture_s']:.2f} x capture | <= 0.5 |")
    print(f"| scoring, every site (stride 1) | {t['exact_statistics_s']:.3f} | "
          f"{t['exact_statistics_s'] / t['capture_s']:.2f} x capture | |")
    small, large = peak_memory(args.model, 256, args.batch), peak_memory(args.model, 2048, args.batch)
    print(f"| peak memory, 256 images | {small:.0f} MiB | | |")
    print(f"| peak memory, 2048 images | {large:.0f} MiB | {large / small:.2f} x | ~1.0 |")
    from bench_aura import entropy_table

    print("\naura entropy throughput (batch 128):")
    entropy_table(128, 3)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
