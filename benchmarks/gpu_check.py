"""The CUDA and TensorRT paths on a machine with an NVIDIA GPU: does capture give the CPU's statistics, and
do `profile`, `bench` and the latency model hold there?

    python benchmarks/gpu_check.py                       # on the GPU machine: writes docs/gpu.md, docs/gpu-profile.toml
    python benchmarks/gpu_check.py --providers cpu --out /tmp/gpu.md --profile-out /tmp/p.toml   # the CPU half

1. capture: the consumers' Gram sums (refit-error) and the activation moments (aura-mi's capture) with the
   CUDA provider (IO binding: outputs stay on the GPU until read) against the CPU provider on the same
   images; the largest relative difference must be at most 1e-3;
2. profile: the device (CUDA fp32, TensorRT fp16) measured as `edgeprune profile --device ... --model`
   would: roofline, per-layer tables of each model, the whole model;
3. bench: each model pruned to half its MACs on the device's alignment step (8) and without it (1),
   measured against the original, interleaved, as `edgeprune bench --vs` does, beside the latency model's
   predicted speed-up from the tables just measured.
Models: the ImageNet-layout ResNet-18 and MobileNetV2 of bench_latency.py at 224x224, random weights.

A provider that does not load stops the check before anything is written, with one line naming it and why.
With ``--providers cpu`` every step runs on the CPU provider instead (the script's own check, runnable
anywhere); it then needs explicit --out and --profile-out, so that it never writes over the GPU results.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
PRECISION = {"cpu": "fp32", "cuda": "fp32", "tensorrt": "fp16"}
TOLERANCE = 1e-3


def why_not(provider: str) -> str | None:
    """None when ``provider`` loads here; else why not, in a few words."""
    import onnxruntime as ort

    from edgeprune.runtime import provider_works

    name = NAMES[provider]
    if provider == "cpu" or provider_works(name):
        return None
    if name not in ort.get_available_providers():
        return f"this onnxruntime ({ort.__version__}) is built without it (install onnxruntime-gpu)"
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA driver here (nvidia-smi not found): no GPU on this machine"
    return "a session on it falls back to the CPU (a CUDA, cuDNN or TensorRT library failed to load)"


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(float(np.abs(b).max()), 1e-12)
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max()) / scale


def capture_difference(model, analysis, data, provider: str) -> dict[str, float]:
    """The largest relative difference of capture's statistics between ``provider`` and the CPU."""
    from edgeprune.capture import capture_stats
    from edgeprune.capture.grams import capture_grams

    grams = {p: capture_grams(model, analysis, data, batch_size=16, provider=p) for p in ("cpu", provider)}
    gram = max(
        max(relative_difference(a.xx, b.xx), relative_difference(a.x_sum, b.x_sum))
        for a, b in zip(grams[provider].grams, grams["cpu"].grams)
    )
    stats = {p: capture_stats(model, analysis, data, batch_size=16, provider=p, measures=frozenset()) for p in grams}
    moments = max(
        relative_difference(a.values[k], b.values[k])
        for a, b in zip(stats[provider].points, stats["cpu"].points)
        for k in ("mean_activation", "mean_abs_activation")
    )
    return {"gram": gram, "moments": moments}


def device_for(provider: str):
    """A device profile for this GPU (or CPU): a built-in profile's shape (the AGX Orin's for a GPU: its
    precisions) with the provider, precision and the 8-channel alignment of tensor-core kernels; its
    figures are then measured here."""
    from edgeprune.hardware import resolve_device

    base = resolve_device("x86-cpu" if provider == "cpu" else "jetson-agx-orin")
    return replace(
        base,
        name=f"{provider}-check",
        description=f"This machine on the {provider} provider ({PRECISION[provider]}), measured by gpu_check.py",
        provider=provider,
        precision=PRECISION[provider],
        alignment=8,
        threads=0,
    )


def speedups(path: Path, device, rounds: int) -> list[dict]:
    """Half the MACs, aligned (8) and not (1): measured against the original and predicted from the tables."""
    sys.path.insert(0, str(HERE))
    from bench_latency import Case

    from edgeprune.hardware.timing import Runner, compare
    from edgeprune.selection import Budget
    from edgeprune.surgery import PruningPlan, apply_plan

    case = Case(path, device)
    full = np.ones(len(case.analysis.class_group), dtype=bool)
    rows = []
    for alignment in (8, 1):
        kept = case.plan(Budget(macs=0.5, floor=0.05, alignment=alignment))
        pruned = apply_plan(case.model, case.analysis, PruningPlan(case.analysis.model_sha256, kept))
        runners = [
            Runner(b, provider=device.provider, precision=device.precision)
            for b in (case.original, pruned.proto.SerializeToString())
        ]
        result = compare(*runners, warmup=5, rounds=rounds)
        keep = case.analysis.keep_mask(kept)
        predicted = case.latency.predict(full) / case.latency.predict(keep)
        rows.append(
            {
                "alignment": alignment,
                "measured": result.ratio,
                "noise": result.noise,
                "predicted": predicted,
                "macs": case.costs.cost(keep).macs / case.costs.cost(full).macs,
                "original_ms": result.a.median_ms,
            }
        )
    return rows


def check(args) -> tuple[str, object]:
    """Every measurement, then the page (nothing is written before all have run)."""
    from edgeprune.analysis import analyze
    from edgeprune.graph import load_model
    from edgeprune.hardware.fingerprint import fingerprint
    from edgeprune.hardware.profiler import ProfileSettings, measure_roofline, profile_model

    folder = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    paths = [_model(name, folder) for name in args.models.split(",")]

    def settings(provider: str) -> ProfileSettings:  # TensorRT builds an engine per timed point: fewer
        points = args.tensorrt_points if provider == "tensorrt" else args.points
        return ProfileSettings(points=points, seconds_per_point=args.seconds_per_point)

    title = "the CPU half (the script's own check)" if "cpu" in args.providers else "measured on a GPU"
    lines = [
        f"# The CUDA and TensorRT paths, {title}",
        "",
        "Produced by `python benchmarks/gpu_check.py`"
        f" ({', '.join(args.providers)}). Setup: {_setup(fingerprint(args.providers[0], 0))}.",
        "",
    ]
    lines += [
        "## Capture on the GPU against the CPU",
        "",
        "| model | provider | Gram sums | moments | within 1e-3 |",
        "|---|---|---|---|---|",
    ]
    for path in paths:
        model = load_model(path)
        analysis, data = analyze(model), _images(model, args.images, folder)
        for provider in args.providers:
            diff = capture_difference(model, analysis, data, provider)
            ok = max(diff.values()) <= TOLERANCE
            lines.append(
                f"| {path.stem} | {provider} | {diff['gram']:.1e} | {diff['moments']:.1e} | {'yes' if ok else 'NO'} |"
            )
    lines += [
        "",
        "## Speed-ups at half the MACs, aligned and not, against the latency model",
        "",
        "| model | provider | precision | align | MACs kept | original ms | measured (+-95%) | predicted | error |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    kept_profile = None
    for provider in args.providers:
        device = measure_roofline(device_for(provider), settings(provider))
        for path in paths:
            device = profile_model(device, path, settings(provider))
            for r in speedups(path, device, args.rounds):
                error = abs(r["predicted"] - r["measured"]) / r["measured"]
                lines.append(
                    f"| {path.stem} | {provider} | {device.precision} | {r['alignment']} | {r['macs']:.1%} | "
                    f"{r['original_ms']:.3f} | {r['measured']:.2f}x (+-{r['noise']:.0%}) | "
                    f"{r['predicted']:.2f}x | {error:.1%} |"
                )
        lines.append(
            f"| | {provider} roofline: {device.peak_flops / 1e12:.2f} TFLOP/s {device.precision}, "
            f"{device.roofline.memory_bandwidth / 1e9:.0f} GB/s, {device.layer_overhead_us:.1f} us per layer | | | | | | | |"
        )
        kept_profile = device
    return "\n".join(lines) + "\n", kept_profile


def _setup(stamp: dict) -> str:
    return ", ".join(f"{k} {stamp[k]}" for k in ("gpu", "cpu", "onnxruntime", "tensorrt") if stamp.get(k))


def _model(name: str, folder: Path) -> Path:
    if name.endswith(".onnx"):
        return Path(name)
    sys.path.insert(0, str(HERE))
    from bench_latency import export

    return export(name, folder)


def _images(model, count: int, folder: Path):
    from edgeprune.calibration import load_calibration

    shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in model.shapes[model.input_names[0]][1:])
    path = folder / f"{abs(hash((model.source_sha256, count)))}.npy"
    np.save(path, np.random.default_rng(0).standard_normal((count, *shape)).astype(np.float32))
    return load_calibration(path, model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--providers", default="cuda,tensorrt", help="comma separated: cuda, tensorrt (cpu: the CPU half)"
    )
    parser.add_argument("--models", default="resnet18,mobilenet_v2", help="bench_latency.py names or .onnx paths")
    parser.add_argument("--images", type=int, default=32, help="capture: images compared between providers")
    parser.add_argument("--rounds", type=int, default=20, help="bench: interleaved rounds per comparison")
    parser.add_argument("--points", type=int, default=3, help="profile: channel counts per axis")
    parser.add_argument("--tensorrt-points", type=int, default=2, help="profile with TensorRT (an engine per point)")
    parser.add_argument("--seconds-per-point", type=float, default=0.03)
    parser.add_argument("--out", type=Path, help="the page [default: docs/gpu.md, on a GPU only]")
    parser.add_argument("--profile-out", type=Path, help="the measured profile [default: docs/gpu-profile.toml]")
    args = parser.parse_args(argv)
    args.providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    unknown = [p for p in args.providers if p not in NAMES]
    if unknown or not args.providers:
        print(
            f"gpu_check: unknown provider {', '.join(unknown) or '(none)'}; choose from cuda, tensorrt, cpu",
            file=sys.stderr,
        )
        return 2
    for provider in args.providers:
        reason = why_not(provider)
        if reason is not None:
            print(
                f"gpu_check: the {provider} execution provider does not load: {reason}; nothing was written",
                file=sys.stderr,
            )
            return 2
    if "cpu" in args.providers and (args.out is None or args.profile_out is None):
        print(
            "gpu_check: the CPU half needs --out and --profile-out (docs/gpu.md holds the GPU's results)",
            file=sys.stderr,
        )
        return 2
    from onnx_graphsurgeon.logger import G_LOGGER

    from edgeprune.graph.io import write_text_atomic
    from edgeprune.hardware.profile_toml import save_profile

    G_LOGGER.severity = G_LOGGER.ERROR
    text, profile = check(args)
    out = args.out or REPO / "docs" / "gpu.md"
    profile_out = args.profile_out or REPO / "docs" / "gpu-profile.toml"
    save_profile(
        profile, profile_out, header="A GPU measured by benchmarks/gpu_check.py: an example of a measured profile."
    )
    write_text_atomic(out, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
