"""`optimize`: the whole job, composed from the stages. Each stage is a plain function; this only wires them."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import numpy as np

from edgeprune.analysis import analyze
from edgeprune.cost import PlanCostModel, model_cost
from edgeprune.errors import BudgetError, InputError
from edgeprune.evaluate import compare
from edgeprune.graph import load_model
from edgeprune.recovery import RecoverySettings
from edgeprune.report import Report
from edgeprune.scoring.registry import DEFAULT_CRITERION
from edgeprune.search.settings import SearchSettings
from edgeprune.selection import STRATEGIES, Budget, Selector
from edgeprune.semiotic.settings import SemioticSettings
from edgeprune.stages import (  # noqa: F401  (prune_to_budget, StageClock: part of this module's API)
    Progress, PruneOutcome, StageClock, batch_size_for, latency_model, prune_to_budget, training_progress,
)
from edgeprune.surgery import PruningPlan

logger = logging.getLogger(__name__)

MIN_CALIBRATION = 16  # enough for a few scoring batches and a held-out part that means something


@dataclass(frozen=True)
class OptimizeConfig:
    model: Path
    calib: Path
    out: Path
    budget: Budget
    strategy: str = "mi"
    criterion: str = DEFAULT_CRITERION
    normalisation: str = "mean"  # how the MI ranker puts groups on one scale (selection.ranker.NORMALISATIONS)
    reconstruct: bool = True
    held_out: float = 0.2
    limit: int | None = None
    batch_size: int = 64
    levels: int | None = None
    samples_per_image: int = 16
    ridge: float = 1e-3
    seed: int = 0
    provider: str = "auto"
    tolerance: float = 1e-4
    max_acc_drop: float | None = None
    device: str | None = None  # a device profile (name, alias or .toml): latency predicted there; default host
    latency_rounds: int = 20  # interleaved host runs of the original and the pruned model (0: do not measure)
    preprocessing: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    semiotic: SemioticSettings = field(default_factory=SemioticSettings)  # the semiotic strategy's settings
    search: SearchSettings = field(default_factory=SearchSettings)  # the rl strategy's settings
    recovery: RecoverySettings = field(default_factory=RecoverySettings)  # distillation, progressive steps

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InputError(f"unknown strategy '{self.strategy}'; choose one of {', '.join(STRATEGIES)}")
        from edgeprune.selection.ranker import NORMALISATIONS

        if self.normalisation not in NORMALISATIONS:
            raise InputError(f"unknown --normalise '{self.normalisation}'; choose one of {', '.join(NORMALISATIONS)}")
        if not 0.0 < self.held_out < 1.0:
            raise InputError(f"--held-out must be a fraction in (0, 1), got {self.held_out}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be positive, got {self.batch_size}")
        if self.samples_per_image < 1:
            raise InputError(f"--samples-per-image must be positive, got {self.samples_per_image}")
        if self.max_acc_drop is not None and not self.max_acc_drop >= 0.0:
            raise InputError(f"--max-acc-drop is the most accuracy points the run may lose: zero or positive, "
                             f"got {self.max_acc_drop}")
        if not self.ridge >= 0.0:
            raise InputError(f"--ridge must be zero or positive, got {self.ridge}")

    def to_dict(self) -> dict:
        data = asdict(replace(self, preprocessing=dict(self.preprocessing)))  # a mapping proxy cannot be copied
        data.update(model=str(self.model), calib=str(self.calib), out=str(self.out), budget=self.budget.to_dict(),
                    recovery=self.recovery.to_dict())
        return data


@dataclass(frozen=True)
class OptimizeResult:
    model_path: Path
    plan_path: Path
    report_path: Path
    report: Report


def optimize(config: OptimizeConfig, progress: Progress | None = None) -> OptimizeResult:
    from edgeprune.calibration import load_calibration
    from edgeprune.scoring.registry import scorer

    timings: dict[str, float] = {}
    clock = StageClock(timings)
    scorer(config.criterion)  # an unknown criterion fails before any work
    model = load_model(config.model)
    analysis = analyze(model)
    if not analysis.prunable_groups:
        raise InputError(f"{config.model} has no prunable channel group; `edgeprune inspect` says why each is frozen")
    if config.recovery.enabled:  # fail before any work when training cannot run
        from edgeprune.train import require_torch

        require_torch()
        from edgeprune.train.executor import check_trainable

        check_trainable(model)
    costs = PlanCostModel(model, analysis)
    latency = latency_model(config, model, analysis)
    selector = Selector(analysis, costs, config.budget, latency)
    selector.check_reachable({g.id: np.ones(g.channels) for g in analysis.prunable_groups})
    clock.lap("load")
    calibration = load_calibration(config.calib, model, limit=config.limit, seed=config.seed, **config.preprocessing)
    calibration.require(MIN_CALIBRATION, "scoring, reconstruction and a held-out check")
    config = replace(config, batch_size=batch_size_for(model, config.batch_size))
    fit, held_out = calibration.split(config.held_out, seed=config.seed)
    train = _training_data(config, model, fit)
    if config.recovery.steps > 1:
        from edgeprune.progressive import prune_progressively

        outcome, recovery = prune_progressively(model, analysis, selector, fit, held_out, train, config, progress, clock)
        final = outcome.final
    else:
        outcome = prune_to_budget(model, analysis, selector, fit, held_out, config, progress, clock)
        final, recovery = _distil_once(model, analysis, outcome, train, held_out, config, progress, clock)
    plan = outcome.plan

    def judged(candidate):
        return compare(model, candidate, held_out, batch_size=config.batch_size, provider=config.provider)

    plain = judged(outcome.pruned)
    reconstructed_only = outcome.refit is not None and config.recovery.steps == 1  # progressive: distilled already
    rebuilt = judged(outcome.final) if reconstructed_only else None
    recovered = judged(final) if config.recovery.enabled else None
    clock.lap("evaluate")
    latency_report = _latency_report(config, latency, model, final, analysis, plan)
    clock.lap("latency")
    report = Report(
        settings=config.to_dict(),
        model={"path": str(config.model), "sha256": model.source_sha256, "normalisation": list(model.notes),
               "calibration": {"images": calibration.count, "fit": fit.count, "held_out": held_out.count,
                               "labels": calibration.labels is not None, "preprocessing": dict(calibration.preprocessing)}},
        cost_before=model_cost(model).to_dict(),
        cost_after=model_cost(final).to_dict(),
        layers=_layers(analysis, plan, outcome.scores),
        verification=outcome.proof.to_dict(),
        comparison_pruned=plain.to_dict(),
        comparison_reconstructed=rebuilt.to_dict() if rebuilt else None,
        comparison_recovered=recovered.to_dict() if recovered else None,
        recovery=recovery,
        reconstruction=outcome.refit.to_dict() if outcome.refit else None,
        scoring=outcome.scoring,
        timings=timings,
        latency=latency_report,
    )
    _guard_accuracy(config, recovered or rebuilt or plain)
    from edgeprune.surgery.index_map import kept_index_map

    return _write(config.out, final, plan, report, kept_index_map(model, analysis, plan))


def _distil_once(model, analysis, outcome, train, held_out, config: OptimizeConfig, progress, clock):
    """The model to ship and the recovery section: distilled after reconstruction when recovery is on."""
    if not config.recovery.enabled:
        return outcome.final, None
    from edgeprune.recovery import distill_outcome

    final, trained = distill_outcome(model, analysis, outcome.plan, outcome.final, train, held_out,
                                     config.recovery.distill, progress=training_progress(progress))
    clock.lap("recover")
    return final, {"steps": [], "final": trained.to_dict()}


def _training_data(config: OptimizeConfig, model, fit):
    """What distillation trains on: --train-data (same preprocessing as --calib), else the fit split."""
    if not config.recovery.enabled or config.recovery.train_data is None:
        return fit
    from edgeprune.calibration import load_calibration

    return load_calibration(config.recovery.train_data, model, seed=config.seed, **config.preprocessing)


def _latency_report(config: OptimizeConfig, latency, model, final, analysis, plan: PruningPlan) -> dict:
    """Predicted latency on the target and, interleaved on this machine, measured latency before and after."""
    from edgeprune.hardware.validation import latency_section, measure_on_host

    host = None
    if config.latency_rounds > 0:
        provider = "cpu" if config.provider == "auto" and latency.profile.provider == "cpu" else config.provider
        host = measure_on_host(model.proto.SerializeToString(), final.proto.SerializeToString(), provider=provider,
                               rounds=config.latency_rounds)
    return latency_section(latency, analysis.keep_mask(plan.kept), host)


def _layers(analysis, plan: PruningPlan, scores) -> tuple[dict, ...]:
    rows = []
    for group in analysis.groups:
        if not group.producers:
            continue
        kept = len(plan.kept.get(group.id, range(group.channels)))
        score = scores.get(group.id)
        rows.append({"group": group.id, "channels": group.channels, "kept": kept, "prunable": group.prunable,
                     "frozen": [str(r) for r in group.frozen],
                     "scored_by": (score.fallback or score.criterion) if score else None})
    return tuple(rows)


def _guard_accuracy(config: OptimizeConfig, comparison) -> None:
    if config.max_acc_drop is None:
        return
    drop = comparison.accuracy_drop
    if drop is None:
        raise InputError("--max-acc-drop needs labelled calibration data (class sub-folders or 'labels' in the .npz)")
    if drop * 100 > config.max_acc_drop:
        raise BudgetError(
            f"accuracy fell by {drop * 100:.2f} points ({comparison.accuracy_original:.2%} -> "
            f"{comparison.accuracy_pruned:.2%}) on held-out images, more than --max-acc-drop {config.max_acc_drop}; "
            "nothing was written (keep more: a larger --target-flops)"
        )


def _write(out: Path, model, plan: PruningPlan, report: Report, index_map: dict) -> OptimizeResult:
    """Write the three files into a staging folder first, then move them in: all of them, or none."""
    import json
    import os
    import shutil
    import tempfile

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".edgeprune-", dir=out))
    except OSError as exc:
        raise InputError(f"cannot write to {out} ({exc.strerror or exc}); choose a writable folder") from exc
    names = ("model.pruned.onnx", "plan.json", "report.json")
    try:
        model.save(staging / names[0])
        plan_data = {**plan.to_dict(), "index_map": index_map}
        (staging / names[1]).write_text(json.dumps(plan_data, indent=1) + "\n", encoding="utf-8")
        (staging / names[2]).write_text(report.to_json(), encoding="utf-8")
        for name in names:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return OptimizeResult(out / names[0], out / names[1], out / names[2], report)
