"""`devices`, `profile` and `bench`: the device catalog, measuring a device on itself, and timing a model."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from edgeprune.cli.shape_options import input_shape_option
from edgeprune.errors import InputError

PROVIDERS = ["cpu", "cuda", "tensorrt"]


@click.command("devices")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def devices_command(as_json: bool) -> None:
    """List the built-in device profiles (use a name, an alias, or a .toml path with --device)."""
    from edgeprune.hardware import builtin_devices, resolve_device

    rows: list[dict[str, Any]] = []
    for entry in builtin_devices():
        profile = resolve_device(entry.name)
        rows.append(
            {
                "name": entry.name,
                "aliases": list(entry.aliases),
                "provider": profile.provider,
                "precision": profile.precision,
                "alignment": profile.alignment,
                "measured": profile.measured,
                "description": profile.description,
                "path": str(entry.path),
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    for row in rows:
        aliases = f" (alias {', '.join(row['aliases'])})" if row["aliases"] else ""
        tables = ", measured tables" if row["measured"] else ""
        click.echo(
            f"{row['name']:<18} {row['provider']:<9} {row['precision']:<5} align {row['alignment']:<3}"
            f"{tables}{aliases}\n  {row['description']}"
        )


@click.command("profile")
@click.option("--device", required=True, help="The device this runs on: a name, an alias, or a profile .toml.")
@click.option("--model", type=click.Path(path_type=Path), help="Measure per-layer tables of this model and the model.")
@click.option("--points", type=int, default=5, show_default=True, help="Channel counts sampled per axis of each layer.")
@click.option("--seconds-per-point", type=float, default=0.15, show_default=True, help="Timing per measured point.")
@click.option("--threads", type=int, help="Runtime threads (default: the profile's, 0 = the runtime's choice).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Where to write the profile.")
@input_shape_option
def profile_command(device, model, points, seconds_per_point, threads, output, input_shapes) -> None:
    """Measure a device on itself: its roofline and, with --model, latency tables the host then uses."""
    from edgeprune.hardware import resolve_device, save_profile
    from edgeprune.hardware.host_cache import for_this_cpu
    from edgeprune.hardware.profiler import ProfileSettings, measure_roofline, profile_model, sized_model

    settings = ProfileSettings(points=points, seconds_per_point=seconds_per_point, threads=threads)
    if model is not None and not Path(model).is_file():
        raise InputError(f"model not found: {model}")
    if input_shapes and model is None:
        raise InputError("--input-shape sizes the inputs of --model; give --model too")
    sized = sized_model(model, input_shapes) if model is not None else None  # a bad size fails before timing
    shipped = _shipped_host(device)  # this machine: measured from the example's settings, not from its cache
    base = resolve_device(device) if shipped is None else for_this_cpu(shipped)  # the host: its CPU's alignment
    measured = measure_roofline(base, settings)
    if sized is not None:
        measured = profile_model(measured, sized, settings, progress=_progress())
    header = (
        f"Device profile of {base.name}, measured by `edgeprune profile` on this device.\n"
        f"Roofline and tables: see [measured.fingerprint] for the setup they hold for."
    )
    save_profile(measured, output, header=header)
    if shipped is not None:
        from edgeprune.hardware.host_cache import store

        cached = store(measured, shipped)  # the next --device host uses it
        if cached is not None:
            click.echo(f"kept as this machine's host profile: {cached}", err=True)
    tables = f", {len(measured.layers)} layer tables, {len(measured.models)} whole models" if model else ""
    click.echo(
        f"wrote {output}: {measured.name} on {measured.provider}, peak "
        f"{measured.peak_flops / 1e9:.1f} GFLOP/s, {measured.roofline.memory_bandwidth / 1e9:.1f} GB/s{tables}"
    )


@click.command("bench")
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--vs", "other", type=click.Path(path_type=Path), help="A second model: interleave the two, report the ratio."
)
@click.option("--device", help="Run as this device does: its provider, threads and precision (flags still win).")
@click.option("--provider", type=click.Choice(PROVIDERS), help="Execution provider [default: cpu, or the --device's].")
@click.option("--threads", type=int, help="Intra-op threads (default: the runtime's choice).")
@click.option("--warmup", type=int, default=5, show_default=True)
@click.option("--repeats", type=int, default=30, show_default=True, help="Timed runs (rounds of both with --vs).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@input_shape_option
def bench_command(model, other, device, provider, threads, warmup, repeats, as_json, input_shapes) -> None:
    """Time MODEL: warm-up, repeated runs, median and spread (inputs are random, batch 1 unless --input-shape
    says otherwise)."""
    from edgeprune.hardware.timing import Runner, compare, load_bytes, measure

    precision = "fp32"
    if device is not None:
        from edgeprune.hardware import resolve_device

        profile = resolve_device(device)
        provider, precision = provider or profile.provider, profile.precision
        threads = threads if threads is not None else (profile.threads or None)
    provider = provider or "cpu"
    data = load_bytes(model)
    other_data = load_bytes(other) if other is not None else None
    sizes = _feed_shapes(data, input_shapes)
    other_sizes = _feed_shapes(other_data, input_shapes) if other_data is not None else None  # both before timing
    first = Runner(data, provider=provider, threads=threads, precision=precision, input_shapes=sizes)
    shapes = {name: list(dims) for name, dims in sizes.items()}
    if other is None:
        timing = measure(first, warmup=warmup, repeats=repeats)
        result = {
            "model": str(model),
            "providers": list(first.providers),
            "threads": threads,
            "input_shapes": shapes,
            **timing.to_dict(),
        }
        text = json.dumps(result, indent=1) if as_json else _timing_line(str(model), timing, input_shapes and sizes)
        click.echo(text)
        return
    assert other_data is not None  # --vs was given
    second = Runner(other_data, provider=provider, threads=threads, precision=precision, input_shapes=other_sizes)
    comparison = compare(first, second, warmup=warmup, rounds=repeats)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "model": str(model),
                    "vs": str(other),
                    "providers": list(first.providers),
                    "threads": threads,
                    "input_shapes": shapes,
                    **comparison.to_dict(),
                },
                indent=1,
            )
        )
        return
    click.echo(_timing_line(str(model), comparison.a, input_shapes and sizes))
    click.echo(_timing_line(str(other), comparison.b, input_shapes and other_sizes))
    click.echo(
        f"ratio {comparison.ratio:.3f} ({model} / {other}, {comparison.rounds} interleaved rounds; "
        f"noise +-{comparison.noise:.1%})"
    )


def _shipped_host(device: str):
    """The shipped host profile when ``device`` names this machine (`--device host` or `cpu`), else None."""
    from edgeprune.hardware import builtin_devices, load_profile
    from edgeprune.hardware.catalog import ALIASES

    text = str(device).strip().lower()
    if ALIASES.get(text, text) != "host":
        return None
    entry = next((e for e in builtin_devices() if e.name == "host"), None)
    return load_profile(entry.path) if entry is not None else None


def _timing_line(name: str, timing, sizes=None) -> str:
    """One model's timing; ``sizes`` (given with --input-shape) says at what input size."""
    at = " at " + " ".join(f"{n}={','.join(map(str, d))}" for n, d in sizes.items()) if sizes else ""
    return (
        f"{name}{at}: median {timing.median_ms:.3f} ms (p10 {timing.p10_ms:.3f}, p90 {timing.p90_ms:.3f}, "
        f"spread {timing.spread:.1%}, {_runs(timing)} after {timing.warmup} warm-up)"
    )


def _runs(timing) -> str:
    if timing.per_timing > 1:  # a quick model, timed a few runs at a time (`timing.compare`)
        return f"{timing.runs} timings of {timing.per_timing} runs"
    return f"{timing.runs} runs"


def _feed_shapes(model_bytes: bytes, specs: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """Every input's size to time the model at; a dynamic height or width needs --input-shape."""
    import onnx

    from edgeprune.graph.shapes import feed_shapes

    try:
        proto = onnx.load_from_string(model_bytes)
    except Exception:  # noqa: BLE001 - not ONNX: the Runner says so in its own words
        return {}
    return feed_shapes(proto, specs)


def _progress():
    if not sys.stderr.isatty():
        return None
    from edgeprune.cli.optimize_cmd import _progress as bars

    return bars()


def alignment_for(alignment: int | None, device: str | None) -> int:
    """--align when given; else the target device's alignment (this machine's, `host`, when no device is
    named): channel counts off a device's steps can run slower than the original model there."""
    if alignment is not None:
        return alignment
    from edgeprune.hardware import resolve_device

    return resolve_device(device or "host").alignment
