"""Numbers and names as the rendered reports show them (shared by report.md, report.html and the sweep)."""

from __future__ import annotations

from collections.abc import Mapping

from edgeprune.reporting.report import final_comparison


def short_name(name: str) -> str:
    """A layer label: the node path without the module names its children repeat
    ("/blocks/blocks.0/body/body.0/body.0.0/Conv" -> "blocks.0/body.0.0/Conv")."""
    parts = [p for p in name.strip("/").split("/") if p]
    kept = [p for p, nxt in zip(parts, parts[1:] + [""]) if not nxt.startswith(p + ".")]
    return "/".join(kept) or name


def human(count: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(count) < 1000:
            return f"{count:.1f}{unit}" if unit else f"{int(count)}"
        count /= 1000
    return f"{count:.1f}P"


def pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}%}"


def change(before: float | None, after: float | None, spec: str = ",.0f", unit: str = "") -> str:
    """'before -> after (after as a share of before)', the format of the CI summary's table."""
    if not before or after is None:
        return "n/a"
    return f"{before:{spec}}{unit} -> {after:{spec}}{unit} ({after / before:.1%})"


def judged(data: Mapping) -> str:
    """The held-out judgement of the shipped model in words: measure before -> after on N images."""
    final = final_comparison(data)
    original, pruned, images = final.get("accuracy_original"), final.get("accuracy_pruned"), final["images"]
    if original is not None and pruned is not None:
        return f"{original:.2%} -> {pruned:.2%} on {images} images"
    measure = final.get("measure")
    if measure is not None and measure in final.get("measures", {}):
        return f"{final['measures'][measure]:.2%} {measure} with the original on {images} images"
    return f"output error {final['output_error']:.4f} on {images} images"


def measure_name(data: Mapping) -> str:
    final = final_comparison(data)
    return f"held-out {final.get('measure') or 'output error'}"


def gain_text(latency: Mapping) -> str | None:
    """How the predicted gain splits between removed blocks and thinned channels, in words; None for a plan
    that removes no block (the report has no ``predicted_gain`` then)."""
    split = latency.get("predicted_gain")
    if not split:
        return None
    share = "" if split["depth_share"] is None else f", {split['depth_share']:.1%} of the gain"
    return (
        f"{split['depth_ms']:.3f} ms saved by {split['removed_blocks']} removed blocks "
        f"({split['removed_layers']} layers{share}), {split['channels_ms']:.3f} ms by thinned channels; "
        f"{split['ms_saved']:.3f} ms in all"
    )


def headline(data: Mapping) -> str:
    """One sentence: the speed-up predicted on the device and measured here, what was kept, what was cut."""
    latency = data.get("latency") or {}
    host = latency.get("measured_host") or {}
    final = final_comparison(data)
    parts = []
    if latency.get("predicted_speedup"):
        parts.append(f"{latency['predicted_speedup']:.2f}x predicted on {latency['device']}")
        share = (latency.get("predicted_gain") or {}).get("depth_share")
        if share is not None:
            parts[-1] += f" ({share:.0%} of the gain from removed blocks)"
    if host.get("speedup"):
        parts.append(f"{host['speedup']:.2f}x measured on this machine")
    drop = final.get("drop_points")
    if drop is not None:
        # a pruned model can do better on the held-out images than the original: say gained, not "-1 lost"
        parts.append(f"{abs(drop):.2f} points of {measure_name(data)} {'gained' if drop < 0 else 'lost'}")
    else:
        parts.append(f"output error {final['output_error']:.4f}")
    before, after = data["cost_before"], data["cost_after"]
    cuts = [
        f"{label} -{1 - after[key] / before[key]:.1%}"
        for key, label in (("macs", "MACs"), ("params", "params"), ("weight_bytes", "size"))
        if before.get(key)
    ]
    return ", ".join(parts) + "; " + ", ".join(cuts)
