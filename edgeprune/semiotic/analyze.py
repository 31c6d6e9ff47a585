"""`analyze`: a model's superization curve on calibration data, written as JSON and a PNG plot."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from edgeprune.errors import InputError
from edgeprune.graph.batch import batch_size_for as _batch_size  # a fixed batch dimension takes only that size
from edgeprune.semiotic.curve import SuperizationCurve

FILES = ("superization.json", "superization.png")


@dataclass(frozen=True)
class AnalyzeConfig:
    """``saliency``: mean (default), aura-mi (channels weighted by aura MI); Grad-CAM when ``torch_model`` is given."""

    model: Path
    calib: Path
    out: Path
    saliency: str = "mean"
    torch_model: Path | None = None
    levels: int | None = None
    resolution: int | None = None  # pool every map to at most this size a side (None: native sizes)
    limit: int | None = None
    batch_size: int = 64
    seed: int = 0
    provider: str = "auto"
    plot: bool = True
    preprocessing: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if self.saliency not in ("mean", "aura-mi"):
            raise InputError(f"unknown saliency '{self.saliency}'; choose mean or aura-mi (Grad-CAM: --torch-model)")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be positive, got {self.batch_size}")
        if self.levels is not None and not 2 <= self.levels <= 256:
            raise InputError(f"--levels must be between 2 and 256, got {self.levels}")
        if self.resolution is not None and self.resolution < 2:
            raise InputError(f"--resolution must be at least 2 (sites a side), got {self.resolution}")

    def to_dict(self) -> dict:
        return {
            "model": str(self.model),
            "calib": str(self.calib),
            "out": str(self.out),
            "saliency": self.saliency,
            "torch_model": str(self.torch_model) if self.torch_model else None,
            "levels": self.levels,
            "resolution": self.resolution,
            "limit": self.limit,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "provider": self.provider,
            "preprocessing": dict(self.preprocessing),
        }


@dataclass(frozen=True)
class AnalyzeResult:
    curve: SuperizationCurve
    document: Mapping[str, object]
    files: Mapping[str, Path]


def analyze_superization(config: AnalyzeConfig, progress: Callable[[int, int], None] | None = None) -> AnalyzeResult:
    """Measure the curve and write ``superization.json`` (and ``superization.png``) into ``config.out``."""
    from edgeprune.analysis import analyze
    from edgeprune.calibration import load_calibration
    from edgeprune.graph import load_model
    from edgeprune.semiotic.output import write_files

    _check_out(config.out, config.model)
    model = load_model(config.model)
    preprocessing: dict = dict(config.preprocessing)
    calibration = load_calibration(config.calib, model, limit=config.limit, seed=config.seed, **preprocessing)
    config = replace(config, batch_size=_batch_size(model, config.batch_size))
    if config.torch_model is not None:
        from edgeprune.semiotic.gradcam import measure_gradcam_curve

        curve = measure_gradcam_curve(
            model,
            calibration,
            config.torch_model,
            levels=config.levels,
            resolution=config.resolution,
            batch_size=config.batch_size,
            progress=progress,
        )
    else:
        from edgeprune.semiotic.measure import measure_curve

        curve = measure_curve(
            model,
            analyze(model),
            calibration,
            saliency=config.saliency,
            levels=config.levels,
            resolution=config.resolution,
            batch_size=config.batch_size,
            provider=config.provider,
            progress=progress,
        )
    document = {
        "model": {"path": str(config.model), "sha256": model.source_sha256},
        "settings": config.to_dict(),
        "curve": curve.to_dict(),
    }
    files = {FILES[0]: (json.dumps(document, indent=1) + "\n").encode("utf-8")}
    if config.plot:
        from edgeprune.semiotic.plot import plot_png

        files[FILES[1]] = plot_png(curve, f"{Path(config.model).name}: saliency-map entropy ({curve.saliency})")
    return AnalyzeResult(curve, MappingProxyType(document), MappingProxyType(write_files(config.out, files)))


def _check_out(out: Path, model: Path) -> None:
    """Fail before any work when the output folder cannot be one."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder")
    if out.resolve() == Path(model).resolve():
        raise InputError("--out is the input model; give a folder")
    existing = next((p for p in [out, *out.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise InputError(f"cannot write to {out} ({existing} is a file); choose a writable folder")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"cannot write to {out} ({existing} is not writable); choose a writable folder")
