"""Writing a `DeviceProfile` back as TOML (the format is small, so no TOML-writing dependency is needed).

What is written reads back, through `parse_profile`, to an equal profile: tests check the round trip.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from edgeprune.graph.io import write_text_atomic
from edgeprune.hardware.profile import FORMAT, VERSION, DeviceProfile


def dumps_profile(profile: DeviceProfile, header: str = "") -> str:
    roof = profile.roofline
    lines = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    lines += [
        f"format = {_str(FORMAT)}",
        f"version = {VERSION}",
        f"name = {_str(profile.name)}",
        f"description = {_str(profile.description)}",
        "",
        "[runtime]",
        f"provider = {_str(profile.provider)}",
        f"precision = {_str(profile.precision)}",
        f"threads = {profile.threads}",
        "",
        "[alignment]",
        f"channels = {profile.alignment}",
        f"notes = {_str(profile.alignment_notes)}",
        "",
        "[roofline]",
        "peak_flops = { " + ", ".join(f"{k} = {_num(v)}" for k, v in roof.peak_flops.items()) + " }",
        f"memory_bandwidth = {_num(roof.memory_bandwidth)}",
        f"efficiency = {_num(roof.efficiency)}",
        f"layer_overhead_us = {_num(roof.layer_overhead_us)}",
        "sources = [" + ", ".join(_str(s) for s in roof.sources) + "]",
        f"notes = {_str(roof.notes)}",
    ]
    if profile.measured_overhead_us is not None:
        lines += ["", "[measured]", f"layer_overhead_us = {_num(profile.measured_overhead_us)}"]
    if profile.fingerprint:
        lines += ["", "[measured.fingerprint]"] + [f"{k} = {_str(v)}" for k, v in profile.fingerprint.items()]
    for model in profile.models.values():
        lines += [
            "",
            "[[measured.models]]",
            f"sha256 = {_str(model.sha256)}",
            f"name = {_str(model.name)}",
            f"ms = {_num(model.ms)}",
            f"layers_ms = {_num(model.layers_ms)}",
        ]
        if model.input_shape:
            lines.append(f"input_shape = {_str(model.input_shape)}")
        if model.reduced_ms > 0:
            lines += [f"reduced_ms = {_num(model.reduced_ms)}", f"reduced_layers_ms = {_num(model.reduced_layers_ms)}"]
    for table in profile.layers.values():
        lines += [
            "",
            "[[measured.layers]]",
            f"key = {_str(table.key)}",
            f"depthwise = {str(table.depthwise).lower()}",
            f"cin = {list(table.cin)}",
            f"cout = {list(table.cout)}",
            "ms = [",
        ]
        lines += ["  [" + ", ".join(_num(v) for v in row) + "]," for row in table.ms]
        lines.append("]")
    return "\n".join(lines) + "\n"


def save_profile(profile: DeviceProfile, path: str | Path, header: str = "") -> Path:
    return write_text_atomic(path, dumps_profile(profile, header))


def _str(value: str) -> str:
    """A TOML basic string: JSON's escaping is a subset TOML accepts (no \\/ or \\u surrogates in our text)."""
    return json.dumps(str(value), ensure_ascii=False)


def _num(value: float) -> str:
    """Six significant digits: more than any latency measurement or datasheet figure carries."""
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value} into a device profile")
    return f"{float(value):.6g}"
