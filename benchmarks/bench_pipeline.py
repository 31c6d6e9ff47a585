"""How long `optimize` takes, stage by stage, against one plain ONNX Runtime pass over the same images, and
how much memory it needs as the number of images grows.

    nice python benchmarks/bench_pipeline.py --threads 1 --out /tmp/speed.md
    nice python benchmarks/bench_pipeline.py --code /path/to/an/older/checkout   # the same, on other code

For each model (ImageNet-layout ResNet-18, MobileNetV2 and ResNet-50 at 224x224; a YOLOX-Tiny-style detector
at 416x416; random weights and random images: time does not depend on them), in a fresh process each:
1. one plain ONNX Runtime pass over the N calibration images (batch 32, after one warm-up batch);
2. `optimize` on the same N images to half the MACs (`--target-flops 0.5`, the default refit-error
   criterion, reconstruction on, 20% held out, the shipped host profile), with its stage timings;
3. its peak memory: the most anonymous resident memory sampled during the run (the calibration .npy is
   memory-mapped: its pages are the file's, not the process's) and the peak resident set (VmHWM).
The threads of ONNX Runtime and of numpy's BLAS are both set by --threads. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODELS = {"resnet18": 224, "mobilenet_v2": 224, "resnet50": 224, "yolox_tiny": 416}
BATCH = 32


def resnet50():
    """ImageNet ResNet-50 layout: 7x7/2 stem, max-pool, bottlenecks 3-4-6-3 at 64-128-256-512 (x4 out)."""
    from torch import nn

    from edgeprune.zoo._blocks import classifier, conv_bn
    from edgeprune.zoo.resnet import Bottleneck

    blocks, channels = [], 64
    for stage, (count, stride) in enumerate(((3, 1), (4, 2), (6, 2), (3, 2))):
        mid = 64 * 2**stage
        for i in range(count):
            blocks.append(Bottleneck(channels, mid, mid * 4, stride if i == 0 else 1))
            channels = mid * 4
    return nn.Sequential(conv_bn(3, 64, kernel=7, stride=2), nn.MaxPool2d(3, 2, 1), *blocks, classifier(channels, 1000))


def export(name: str, folder: Path) -> Path:
    """The model with random weights (seed 0), a dynamic batch, exported once into ``folder``."""
    path = folder / f"{name}.onnx"
    if path.exists():
        return path
    import torch

    sys.path.insert(0, str(HERE))
    import bench_latency

    from edgeprune import zoo
    from edgeprune.export import export_torch
    from edgeprune.zoo._blocks import randomize_parameters

    if name == "yolox_tiny":
        module = zoo.build("yolox", width=0.375, depth=0.33, num_classes=1, size=416)
    else:
        module = {"resnet18": bench_latency.resnet18, "mobilenet_v2": bench_latency.mobilenet_v2, "resnet50": resnet50}[
            name
        ]()
        randomize_parameters(module, seed=0)
    size = MODELS[name]
    return export_torch(module, [torch.randn(1, 3, size, size)], path)


def images(folder: Path, count: int, size: int) -> Path:
    """``count`` seeded standard-normal images as a .npy (read memory-mapped, a batch at a time)."""
    path = folder / f"images-{count}-{size}.npy"
    if not path.exists():
        import numpy as np

        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(count, 3, size, size))
        rng = np.random.default_rng(0)
        for start in range(0, count, 256):
            stop = min(start + 256, count)
            out[start:stop] = rng.standard_normal((stop - start, 3, size, size), dtype=np.float32)
        out.flush()
        del out
    return path


# ---- the child process: one measurement, printed as one JSON line ----


class MemoryWatch:
    """The most anonymous resident memory (RssAnon) seen, sampled every 20 ms in a thread."""

    def __init__(self) -> None:
        import threading

        self.peak, self.running = 0, True
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while self.running:
            self.peak = max(self.peak, _status("RssAnon"))
            time.sleep(0.02)

    def stop(self) -> dict:
        self.running = False
        self.thread.join()
        return {"peak_anon_mib": max(self.peak, _status("RssAnon")) / 1024, "peak_rss_mib": _status("VmHWM") / 1024}


def _status(key: str) -> int:
    with open("/proc/self/status", encoding="utf-8") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key + ":"))


def _threads(count: int) -> None:
    """Every ONNX Runtime session of edgeprune on ``count`` intra-op threads (it has no setting for it)."""
    import edgeprune.runtime as runtime

    options = runtime._session_options
    runtime._session_options = lambda threads=None: options(threads or count)


def child_plain(job: dict) -> dict:
    import numpy as np

    from edgeprune.runtime import create_session

    data = np.load(job["images"], mmap_mode="r")
    session = create_session(Path(job["model"]).read_bytes(), "cpu", job["threads"])
    name = session.get_inputs()[0].name
    session.run(None, {name: np.ascontiguousarray(data[:BATCH])})  # warm-up
    start = time.perf_counter()
    for first in range(0, len(data), BATCH):
        session.run(None, {name: np.ascontiguousarray(data[first : first + BATCH])})
    return {"plain_s": time.perf_counter() - start}


def child_optimize(job: dict) -> dict:
    from edgeprune.pipeline import optimize
    from edgeprune.settings import OptimizeSettings

    _threads(job["threads"])
    out = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    tree = {
        "model": job["model"],
        "calibration": {"calib": job["images"]},
        "budget": {"target-flops": 0.5},
        "batch-size": BATCH,
        "provider": "cpu",
        "output": {"out": str(out / "run"), "force": True},
    }
    settings = OptimizeSettings.from_dict(tree)
    stages: list[tuple[str, int, int, float]] = []
    start = time.perf_counter()
    watch = MemoryWatch()
    result = optimize(settings, progress=lambda stage, done, total: stages.append((stage, done, total, 0.0)))
    memory = watch.stop()
    report = result.report
    return {
        "wall_s": time.perf_counter() - start,
        "timings": dict(report.timings),
        "scoring_seconds": dict(report.scoring.get("seconds", {})),
        "progress_stages": sorted({s[0] for s in stages}),
        **memory,
    }


def child_host(job: dict) -> dict:
    """The host latency model's error, with the shipped example and with this machine measured (quick, into a
    fresh cache): speed-ups predicted for bench_latency.py's aligned plans against interleaved measurements."""
    import statistics
    from dataclasses import replace

    import numpy as np

    sys.path.insert(0, str(HERE))
    from bench_latency import Case

    from edgeprune.hardware import LatencyModel, builtin_devices, load_profile
    from edgeprune.hardware.host_cache import host_profile, with_model_tables
    from edgeprune.selection import Budget

    shipped = replace(load_profile(next(e.path for e in builtin_devices() if e.name == "host")), threads=job["threads"])
    case = Case(Path(job["model"]), shipped)
    start = time.perf_counter()
    measured = with_model_tables(host_profile(shipped), case.model, case.analysis)
    measure_s = time.perf_counter() - start
    latency = LatencyModel(measured, case.model, case.analysis)
    step = measured.alignment  # this CPU's (16 with AVX-512F), the shipped example's where it does not tell
    plans = [case.plan(Budget(macs=1 / r, floor=0.05, alignment=step)) for r in (2, 5)]
    plans.append(case.plan(Budget(speedup=2.0, floor=0.05, alignment=step)))
    plans += [case.uniform(ratio, step) for ratio in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4)]
    full = np.ones(len(case.analysis.class_group), dtype=bool)
    errors: dict[str, list[float]] = {"shipped": [], "measured": []}
    for kept in plans:
        row = case.measure(kept)
        keep = case.analysis.keep_mask(kept)
        errors["shipped"].append(abs(row["predicted_speedup"] - row["speedup"]) / row["speedup"])
        ours = latency.predict(full) / latency.predict(keep)
        errors["measured"].append(abs(ours - row["speedup"]) / row["speedup"])
    return {
        "plans": len(plans),
        "alignment": step,
        "measure_s": measure_s,
        "error_shipped": statistics.median(errors["shipped"]),
        "error_measured": statistics.median(errors["measured"]),
        "tables": latency.table_coverage,
    }


def child_quickstart(job: dict) -> dict:
    """The README's quick start with --device host (the default): predicted against measured speed-up."""
    from edgeprune.pipeline import optimize
    from edgeprune.settings import OptimizeSettings

    out = Path(tempfile.mkdtemp(prefix="bench-quickstart-"))
    tree = {
        "model": str(REPO / "edgeprune" / "reference" / "resnet20_fmnist.onnx"),
        "calibration": {"calib": str(REPO / "calibration" / "fashion-mnist"), "preset": "fashion-mnist"},
        "output": {"out": str(out / "run")},
    }
    start = time.perf_counter()
    latency = optimize(OptimizeSettings.from_dict(tree)).report.latency
    return {
        "wall_s": time.perf_counter() - start,
        "predicted": latency["predicted_speedup"],
        "measured": latency["measured_host"]["speedup"],
        "noise": latency["measured_host"]["noise"],
        "tables": latency["tables"],
    }


def child(job: dict) -> dict:
    from onnx_graphsurgeon.logger import G_LOGGER

    G_LOGGER.severity = G_LOGGER.ERROR
    kinds = {"plain": child_plain, "optimize": child_optimize, "host": child_host, "quickstart": child_quickstart}
    return kinds[job["kind"]](job)


# ---- the parent: fresh processes, one table ----


def run(job: dict, code: str | None, threads: int, host: str = "shipped") -> dict:
    """``host``: shipped (time the pipeline, not a first measurement of this machine), or measure (into a
    fresh cache folder)."""
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if threads > 0:  # 0: the libraries' own choice
            env[var] = str(threads)
    env["EDGEPRUNE_HOST_PROFILE"] = host
    if host == "measure":
        env["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="bench-host-cache-")
    if code:
        env["EDGEPRUNE_BENCH_CODE"] = code
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(job)], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:  # a finding, not the end of the run: the row says so
        print(f"{job['kind']} on {job.get('model', '')} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
        return {
            "error": done.stderr.strip().splitlines()[-1][:200] if done.stderr.strip() else f"exit {done.returncode}"
        }
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(name: str, count: int, folder: Path, code: str | None, threads: int) -> dict:
    model, data = export(name, folder), images(folder, count, MODELS[name])
    job = {"model": str(model), "images": str(data), "threads": threads}
    plain = run({**job, "kind": "plain"}, code, threads)
    optimized = run({**job, "kind": "optimize"}, code, threads)
    row = {"model": name, "images": count, **plain, **optimized}
    print(json.dumps(row), file=sys.stderr)
    return row


STAGES = ("capture", "score", "reconstruct", "evaluate", "latency")


def render(rows: list[dict]) -> str:
    lines = [
        "| model | images | plain pass s | optimize s (x plain) | "
        + " | ".join(f"{s} s (x)" for s in STAGES)
        + " | other s | peak anon MiB | peak RSS MiB |",
        "|---|---|---|---|" + "---|" * len(STAGES) + "---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['images']} | failed: {r['error']} |" + " |" * (len(STAGES) + 4))
            continue
        plain, t = r["plain_s"], r["timings"]
        total = sum(t.values())
        other = total - sum(t.get(s, 0.0) for s in STAGES)
        cells = " | ".join(f"{t.get(s, 0.0):.1f} ({t.get(s, 0.0) / plain:.1f}x)" for s in STAGES)
        lines.append(
            f"| {r['model']} | {r['images']} | {plain:.1f} | {r['wall_s']:.1f} ({r['wall_s'] / plain:.1f}x) | {cells} | "
            f"{other:.1f} | {r['peak_anon_mib']:.0f} | {r['peak_rss_mib']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def host_table(args, folder: Path) -> str:
    """The host latency model before (the shipped example) and after measuring this machine."""
    lines = []
    for name in (n for n in args.host_models.split(",") if n):
        model = export(name, folder)
        r = run({"kind": "host", "model": str(model), "threads": args.threads}, args.code, args.threads, host="measure")
        print(json.dumps({"host": name, **r}), file=sys.stderr)
        lines.append(
            f"| {name}, {r['plans']} plans in steps of {r['alignment']} | {r['error_shipped']:.1%} | "
            f"{r['error_measured']:.1%} | "
            f"{r['measure_s']:.1f} s ({r['tables']:.0%} of layers from tables) |"
        )
    if args.quickstart:
        before = run({"kind": "quickstart"}, args.code, 0, host="shipped")
        after = run({"kind": "quickstart"}, args.code, 0, host="measure")
        print(json.dumps({"quickstart": [before, after]}), file=sys.stderr)
        cells = [
            f"{r['predicted']:.2f}x vs {r['measured']:.2f}x (+-{r['noise']:.0%}): "
            f"{abs(r['predicted'] - r['measured']) / r['measured']:.1%}"
            for r in (before, after)
        ]
        lines.append(f"| quick start (goal mode, --device host) | {cells[0]} | {cells[1]} | {after['tables']} |")
    if not lines:
        return ""
    head = [
        "",
        "| host latency model | speed-up error, shipped example | after measuring this machine | measuring |",
        "|---|---|---|---|",
    ]
    return "\n".join(head + lines) + "\n"


def _use_code(code: str | None) -> None:
    """Import edgeprune from ``code`` (a checkout) instead of the installed one: ahead of the path, and
    ahead of an editable install's import hook."""
    if not code:
        return
    sys.path.insert(0, code)
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__name__.lower() + str(f).lower()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--models", default="resnet18,mobilenet_v2,resnet50")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--detector-images", type=int, default=200, help="images for yolox_tiny (0: leave it out)")
    parser.add_argument("--memory-images", default="4096", help="more image counts, for the memory of --memory-models")
    parser.add_argument("--memory-models", default="resnet18")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--host-models", default="", help="also the host latency model's error on these (resnet18,...)")
    parser.add_argument(
        "--quickstart", action="store_true", help="also the quick start's predicted vs measured speed-up"
    )
    parser.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "edgeprune-bench-pipeline"))
    parser.add_argument(
        "--code", help="run this checkout of edgeprune instead (e.g. a git worktree of an older commit)"
    )
    parser.add_argument("--out", help="also write the table (and the rows as JSON beside it)")
    args = parser.parse_args(argv)
    if args.child:
        _use_code(os.environ.get("EDGEPRUNE_BENCH_CODE"))
        print(json.dumps(child(json.loads(args.child))))
        return 0
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = [measure(name, args.images, folder, args.code, args.threads) for name in args.models.split(",") if name]
    if args.detector_images:
        rows.append(measure("yolox_tiny", args.detector_images, folder, args.code, args.threads))
    for count in (int(c) for c in args.memory_images.split(",") if c):
        rows += [
            measure(name, count, folder, args.code, args.threads) for name in args.memory_models.split(",") if name
        ]
    text = render(rows) if rows else ""
    text += host_table(args, folder)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
