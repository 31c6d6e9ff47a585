"""The run's report: what was asked, what was done, what it cost, and the evidence.

Plain data, written as report.json under a versioned schema (``schema.json`` beside this file, checked by
`edgeprune.reporting.schema`); report.md and report.html are rendered from that JSON alone, so
``edgeprune report DIR`` re-renders them byte for byte from the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from edgeprune.reporting.schema import SCHEMA_VERSION


@dataclass(frozen=True)
class Report:
    """Every section of report.json; docs/report.md says what each key means."""

    settings: Mapping[str, object]
    model: Mapping[str, object]
    cost_before: Mapping[str, int]
    cost_after: Mapping[str, int]
    layers: tuple[Mapping[str, object], ...]  # one row per channel group: channels, kept, frozen reasons
    verification: Mapping[str, object]
    comparison_pruned: Mapping[str, object]
    comparison_reconstructed: Mapping[str, object] | None
    reconstruction: Mapping[str, object] | None
    scoring: Mapping[str, object]
    timings: Mapping[str, float]
    latency: Mapping[str, object] | None = None  # predicted on the target device and measured on this machine
    comparison_recovered: Mapping[str, object] | None = None  # after distillation (recovery)
    recovery: Mapping[str, object] | None = None  # the distillation record(s): loss curve, held-out judgements
    goal: Mapping[str, object] | None = None  # the goal search's candidates, when no budget was given
    budget: Mapping[str, object] | None = None  # the budget the plan was cut to (explicit, or the goal's choice)
    plan: Mapping[str, object] | None = None  # the plan in numbers: strategy, groups and channels kept
    layer_table: Sequence[Mapping[str, object]] = ()  # one row per conv/gemm: channels, MACs, latency, refit
    warnings: Sequence[str] = ()  # everything a reader should not miss, from every stage
    sweep: Mapping[str, object] | None = None  # the sweep this run was picked from (`edgeprune sweep --pick`)
    environment: Mapping[str, str] = field(default_factory=lambda: environment())

    def to_dict(self) -> dict:
        """The JSON object: the schema's version and the writer's first, then every section."""
        from edgeprune import __version__

        head = {"schema_version": SCHEMA_VERSION, "edgeprune_version": __version__}
        return {**head, **{name: getattr(self, name) for name in self.__dataclass_fields__}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, default=_plain) + "\n"

    @property
    def final_comparison(self) -> Mapping[str, object]:
        return self.comparison_recovered or self.comparison_reconstructed or self.comparison_pruned


def final_comparison(data: Mapping) -> Mapping:
    """The judgement of the model that was shipped, in a report read back from JSON."""
    return data.get("comparison_recovered") or data.get("comparison_reconstructed") or data["comparison_pruned"]


def environment() -> dict[str, str]:
    """The fingerprint of the machine and the software a run was made with (versions as strings)."""
    import os
    import platform
    from importlib import metadata

    import numpy
    import onnx
    import onnxruntime

    from edgeprune import __version__
    from edgeprune.hardware.fingerprint import cpu_name

    try:
        torch = metadata.version("torch")  # read from the installed metadata: importing torch costs seconds
    except metadata.PackageNotFoundError:
        torch = ""
    return {
        "edgeprune": __version__,
        "python": platform.python_version(),
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": numpy.__version__,
        "torch": torch,
        "machine": platform.machine(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": str(os.cpu_count() or 0),
    }


def _plain(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
