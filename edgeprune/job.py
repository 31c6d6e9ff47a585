"""What every `optimize` run (with a budget, with a goal, or dry) starts from: the settings with their
defaults resolved, the model, its channel analysis, its costs on the target device, and the data."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgeprune.errors import InputError
from edgeprune.settings import OptimizeSettings

logger = logging.getLogger(__name__)

MIN_CALIBRATION = 16  # enough for a few scoring batches and a held-out part that means something
CALIBRATION_HELP = (
    "calibration data is a few hundred images (or arrays) like those the model sees in use; see calibration/README.md"
)


@dataclass(frozen=True)
class Job:
    """``alignment``: the channel step of every plan (--align, else the device's). ``fit``: what scoring,
    reconstruction (and, without --train-data, distillation) see; ``held_out``: what judges the result."""

    settings: OptimizeSettings
    model: Any  # ModelGraph, its input size fixed (from the calibration data) where the file leaves it open
    analysis: Any  # ChannelAnalysis
    costs: Any  # PlanCostModel
    latency: Any  # LatencyModel on the target device
    alignment: int
    calibration: Any = None  # CalibrationSet
    fit: Any = None
    held_out: Any = None
    train: Any = None

    def selector(self, budget):
        from edgeprune.selection import Selector

        return Selector(self.analysis, self.costs, budget, self.latency)

    @property
    def budget(self):
        """The explicit budget (the settings' targets at this job's alignment)."""
        return self.settings.budget.budget(self.alignment)


def resolve(settings: OptimizeSettings) -> tuple[OptimizeSettings, list[str]]:
    """Check what every run needs and fill the defaults that depend on the model: the output folder
    (``./<model stem>.edgeprune/``). Returns the settings and what was chosen by default, in words."""
    if settings.model is None:
        raise InputError("give the ONNX model to optimize (the MODEL argument, or 'model' in the --config file)")
    model = Path(settings.model)
    if not model.is_file():
        raise InputError(f"model not found: {model}")
    if settings.calibration.calib is None:
        raise InputError(f"--calib is missing: {CALIBRATION_HELP}")
    notes = []
    out = settings.output.out
    if out is None:
        out = Path(f"{model.stem}.edgeprune")
        notes.append(f"writing to {out}/")
        settings = replace(settings, output=replace(settings.output, out=out))
    if Path(out).resolve() == model.resolve():
        raise InputError("--out is the input model; give a folder")
    if Path(out).exists() and not Path(out).is_dir():
        raise InputError(f"--out {out} is a file; give a folder")
    if Path(out).is_dir() and any(Path(out).iterdir()) and not settings.output.force:
        raise InputError(f"--out {out} is not empty; give a new or empty folder, or --force to write into it")
    if not settings.budget.explicit:
        device = settings.latency.device or "host"
        notes.append(
            f"no budget given: the fastest plan on {device} within {settings.budget.goal_drop:g} points of "
            "held-out accuracy (--max-acc-drop)"
        )
    return settings, notes


def load_job(settings: OptimizeSettings, data: bool = True) -> Job:
    """The model, its analysis and costs on the target device; with ``data``, the calibration data
    split into fit and held-out parts (and the training data when recovery trains on its own)."""
    from edgeprune.analysis import analyze
    from edgeprune.cost import PlanCostModel
    from edgeprune.graph import load_model
    from edgeprune.hardware import resolve_device
    from edgeprune.stages import latency_model

    assert settings.model is not None  # resolve() or the dry run checked it
    model = _sized(load_model(settings.model), settings)
    device = resolve_device(settings.latency.device or "host")  # an unknown device fails before any work
    analysis = analyze(model)
    if not analysis.prunable_groups:
        raise InputError(f"{settings.model} has no prunable channel group; `edgeprune inspect` says why each is frozen")
    if settings.recovery.enabled:  # fail before any work when training cannot run
        from edgeprune.train import require_torch

        require_torch()
        from edgeprune.train.executor import check_trainable

        check_trainable(model)
    alignment = settings.budget.align if settings.budget.align is not None else device.alignment
    job = Job(
        settings,
        model,
        analysis,
        PlanCostModel(model, analysis),
        latency_model(settings.latency.device, model, analysis),
        alignment,
    )
    return with_data(job) if data else job


def _sized(model, settings: OptimizeSettings):
    """A model whose height or width is dynamic, at the size of the calibration data: costs, latency and
    capture need a size, and the data's is the one the user will run (the batch axis stays as it is)."""
    from edgeprune.graph import dynamic_dims, shapes_from_calibration, with_input_shapes

    open_dims = dynamic_dims(model)
    if not open_dims:
        return model
    if settings.calibration.calib is None:
        names = ", ".join(f"{d.input} axis {d.axis}" for d in open_dims)
        raise InputError(f"the model's input size is dynamic ({names}): give --calib, whose size is used")
    from edgeprune.calibration import load_calibration

    calib = settings.calibration
    assert calib.calib is not None  # checked above
    sample = load_calibration(calib.calib, model, limit=1, seed=settings.seed, **calib.preprocessing())
    sized = with_input_shapes(model, shapes_from_calibration(model, sample))
    logger.info("dynamic input size fixed at the calibration data's: %s", shapes_from_calibration(model, sample))
    return sized


def with_data(job: Job) -> Job:
    from edgeprune.calibration import load_calibration
    from edgeprune.graph.batch import batch_size_for

    settings = job.settings
    calib = settings.calibration
    assert calib.calib is not None  # resolve() checked it
    data = load_calibration(calib.calib, job.model, limit=calib.limit, seed=settings.seed, **calib.preprocessing())
    data.require(MIN_CALIBRATION, "scoring, reconstruction and a held-out check")
    settings = replace(settings, batch_size=batch_size_for(job.model, settings.batch_size))
    fit, held_out = data.split(calib.held_out, seed=settings.seed)
    train = fit
    if settings.recovery.enabled and settings.recovery.train_data is not None:
        train = load_calibration(settings.recovery.train_data, job.model, seed=settings.seed, **calib.preprocessing())
    return replace(job, settings=settings, calibration=data, fit=fit, held_out=held_out, train=train)
