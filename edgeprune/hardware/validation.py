"""Proof of the speed-up: per layer and in total, the MAC reduction, the latency predicted on the target device,
and the latency measured on this machine with the original and the pruned model interleaved.

FLOPs that fall while latency does not are the commonest complaint about pruning tools, so the report always
shows both, and says when the predicted gain is too small to stand out of the measurement noise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from edgeprune.hardware.latency import LatencyModel
from edgeprune.hardware.timing import Runner, compare

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostMeasurement:
    provider: str
    original: dict
    pruned: dict
    speedup: float  # original / pruned, medians of interleaved runs
    noise: float  # relative half-width of a 95% interval of the speed-up
    rounds: int


def measure_on_host(
    original: bytes, pruned: bytes, provider: str = "cpu", rounds: int = 20, threads: int | None = None
) -> HostMeasurement:
    a = Runner(original, provider=provider, threads=threads)
    b = Runner(pruned, provider=provider, threads=threads)
    result = compare(a, b, warmup=5, rounds=rounds)
    return HostMeasurement(a.providers[0], result.a.to_dict(), result.b.to_dict(), result.ratio, result.noise, rounds)


def latency_section(
    latency: LatencyModel, keep: np.ndarray, host: HostMeasurement | None, removed_blocks: int = 0
) -> dict:
    """The report's latency part: totals, per-layer rows, the host measurement and the warnings; when the plan
    removes residual blocks (``removed_blocks`` of them), also how the predicted gain splits between them and
    the channels cut in the layers that stay (`gain_split`)."""
    device = latency.profile
    full = np.ones_like(keep, dtype=bool)
    before, after = latency.breakdown(full), latency.breakdown(keep)
    predicted_before, predicted_after = latency.predict(full), latency.predict(keep)
    predicted_gain = 1.0 - predicted_after / predicted_before if predicted_before > 0 else 0.0
    rows = [
        {
            "node": b.node,
            "op": b.op,
            "channels_before": [b.cin, b.cout],
            "channels_after": [a.cin, a.cout],
            "macs_before": b.macs,
            "macs_after": a.macs,
            "mac_reduction": _reduction(b.macs, a.macs),
            "predicted_ms_before": b.ms,
            "predicted_ms_after": a.ms,
            "source": a.source,
        }
        for b, a in zip(before, after)
    ]
    macs_before, macs_after = sum(b.macs for b in before), sum(a.macs for a in after)
    warnings: list[str] = []
    notes: list[str] = []
    section = {
        "device": device.name,
        "provider": device.provider,
        "precision": device.precision,
        "alignment": device.alignment,
        "profile": device.source,
        "tables": f"{latency.table_coverage:.0%} of layers from measured tables, the rest from the roofline",
        "factor": latency.factor,
        "fixed_ms": latency.fixed_ms,
        "factor_source": latency.factor_source,
        "macs_before": macs_before,
        "macs_after": macs_after,
        "mac_reduction": _reduction(macs_before, macs_after),
        "predicted_ms_before": predicted_before,
        "predicted_ms_after": predicted_after,
        "predicted_speedup": predicted_before / predicted_after if predicted_after > 0 else None,
        "measured_host": None,
        "warnings": warnings,
        "notes": notes,
        "layers": rows,
    }
    if any(a.source == "removed" for a in after):
        section["predicted_gain"] = gain_split(latency, keep, removed_blocks)
    if host is not None:
        section["measured_host"] = host.__dict__.copy()
        if predicted_gain < host.noise:
            warnings.append(
                f"the predicted gain ({predicted_gain:.1%}) is smaller than the host measurement noise "
                f"(+-{host.noise:.1%}): the speed-up may not be measurable"
            )
        if host.speedup < 1.0 - host.noise:
            warnings.append(f"the pruned model measured slower on this machine ({host.speedup:.2f}x)")
    if device.name != "host" and host is not None:
        notes.append(
            f"the measured latency is this machine's ({host.provider}), not the {device.name}'s; "
            f"run `edgeprune bench --vs` on the device to measure there"
        )
    for text in warnings:
        logger.warning(text)
    return section


def gain_split(latency: LatencyModel, keep: np.ndarray, removed_blocks: int = 0) -> dict:
    """The predicted ms saved, split: by the layers of removed blocks (their whole cost, launch included) and
    by the channels cut in the layers that stay; the two add up to the whole predicted gain."""
    depth_ms, gain_ms = latency.gain_from_removed(keep)
    return {
        "removed_blocks": removed_blocks,
        "removed_layers": sum(row.source == "removed" for row in latency.breakdown(keep)),
        "ms_saved": gain_ms,
        "depth_ms": depth_ms,
        "channels_ms": gain_ms - depth_ms,
        "depth_share": depth_ms / gain_ms if gain_ms > 0 else None,
    }


def _reduction(before: float, after: float) -> float:
    return 1.0 - after / before if before else 0.0
