"""The run's report: what was asked, what was done, what it cost, and the evidence."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Report:
    """Plain data, written as report.json; ``summary_lines`` is what the CLI prints."""

    settings: Mapping[str, object]
    model: Mapping[str, object]
    cost_before: Mapping[str, int]
    cost_after: Mapping[str, int]
    layers: tuple[Mapping[str, object], ...]
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
    environment: Mapping[str, str] = field(default_factory=lambda: environment())

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, default=_plain) + "\n"

    @property
    def final_comparison(self) -> Mapping[str, object]:
        return self.comparison_recovered or self.comparison_reconstructed or self.comparison_pruned


def environment() -> dict[str, str]:
    import numpy
    import onnx
    import onnxruntime

    from edgeprune import __version__

    return {
        "edgeprune": __version__,
        "python": platform.python_version(),
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": numpy.__version__,
        "machine": platform.machine(),
    }


def _plain(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
