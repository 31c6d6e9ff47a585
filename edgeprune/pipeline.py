"""`optimize`: the whole job, composed from the stages. Each stage is a plain function; this only wires them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeprune.candidate import Pruned, judge, prune_and_recover
from edgeprune.cost import model_cost
from edgeprune.errors import BudgetError, InputError
from edgeprune.graph import input_shapes_of
from edgeprune.job import Job, load_job, resolve, with_data
from edgeprune.report import Report
from edgeprune.settings import OptimizeSettings
from edgeprune.stages import (  # noqa: F401  (prune_to_budget, score_channels, cut: part of this module's API)
    Progress,
    PruneOutcome,
    StageClock,
    cut,
    prune_to_budget,
    score_channels,
)
from edgeprune.surgery import PruningPlan

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OptimizeResult:
    model_path: Path
    plan_path: Path
    report_path: Path
    report: Report


def optimize(settings: OptimizeSettings, progress: Progress | None = None) -> OptimizeResult:
    """The whole job: prune ``settings.model`` to the budget (or, with none, to the goal: the fastest plan on
    the device within ``max-acc-drop``), prove, reconstruct, recover, judge, and write model, plan and report
    into ``settings.output.out``: all three files, or none."""
    from edgeprune.scoring.registry import scorer

    timings: dict[str, float] = {}
    clock = StageClock(timings)
    settings, _ = resolve(settings)
    scorer(settings.scoring.criterion)  # an unknown criterion fails before any work
    job = load_job(settings, data=False)
    if settings.budget.explicit:
        job.selector(job.budget).check_reachable({g.id: np.ones(g.channels) for g in job.analysis.prunable_groups})
    clock.lap("load")
    job = with_data(job)
    settings = job.settings
    goal = None
    if settings.budget.explicit:
        chosen = prune_and_recover(job, job.budget, progress, clock)
    else:
        from edgeprune.goal import search_goal

        chosen, goal = search_goal(job, progress, clock)
    report = _report(job, chosen, goal, clock, timings)
    _guard_accuracy(settings, report.final_comparison)
    from edgeprune.graph import read_model_proto, restore_dynamic_dims
    from edgeprune.surgery.index_map import kept_index_map

    shipped = restore_dynamic_dims(chosen.final, read_model_proto(settings.model))  # runs at every size again
    return _write(
        settings.output.out,
        shipped,
        chosen.outcome.plan,
        report,
        kept_index_map(job.model, job.analysis, chosen.outcome.plan),
    )


def _report(job: Job, chosen: Pruned, goal: dict | None, clock: StageClock, timings: dict) -> Report:
    settings, outcome, model = job.settings, chosen.outcome, job.model
    plain = judge(job, outcome.pruned)
    reconstructed_only = outcome.refit is not None and settings.recovery.steps == 1  # progressive: distilled already
    rebuilt = judge(job, outcome.final) if reconstructed_only else None
    recovered = judge(job, chosen.final) if settings.recovery.enabled else None
    clock.lap("evaluate")
    latency_report = _latency_report(settings, job.latency, model, chosen.final, job.analysis, outcome.plan)
    clock.lap("latency")
    data = job.calibration
    return Report(
        settings=settings.to_dict(),
        model={
            "path": str(settings.model),
            "sha256": model.source_sha256,
            "normalisation": list(model.notes),
            "input_shapes": input_shapes_of(model),
            "calibration": {
                "images": data.count,
                "fit": job.fit.count,
                "held_out": job.held_out.count,
                "labels": data.labels is not None,
                "preprocessing": dict(data.preprocessing),
            },
        },
        cost_before=model_cost(model).to_dict(),
        cost_after=model_cost(chosen.final).to_dict(),
        layers=_layers(job.analysis, outcome.plan, outcome.scores),
        verification=outcome.proof.to_dict(),
        comparison_pruned=plain.to_dict(),
        comparison_reconstructed=rebuilt.to_dict() if rebuilt else None,
        comparison_recovered=recovered.to_dict() if recovered else None,
        recovery=chosen.recovery,
        reconstruction=outcome.refit.to_dict() if outcome.refit else None,
        scoring=outcome.scoring,
        timings=timings,
        latency=latency_report,
        goal=goal,
        budget=dict(outcome.plan.settings.get("budget", {})),
    )


def _latency_report(settings: OptimizeSettings, latency, model, final, analysis, plan: PruningPlan) -> dict:
    """Predicted latency on the target and, interleaved on this machine, measured latency before and after."""
    from edgeprune.hardware.validation import latency_section, measure_on_host

    host = None
    rounds = settings.latency.latency_rounds
    if rounds > 0:
        provider = "cpu" if settings.provider == "auto" and latency.profile.provider == "cpu" else settings.provider
        host = measure_on_host(
            model.proto.SerializeToString(), final.proto.SerializeToString(), provider=provider, rounds=rounds
        )
    return latency_section(latency, analysis.keep_mask(plan.kept), host)


def _layers(analysis, plan: PruningPlan, scores) -> tuple[dict, ...]:
    rows = []
    for group in analysis.groups:
        if not group.producers:
            continue
        kept = len(plan.kept.get(group.id, range(group.channels)))
        score = scores.get(group.id)
        rows.append(
            {
                "group": group.id,
                "channels": group.channels,
                "kept": kept,
                "prunable": group.prunable,
                "frozen": [str(r) for r in group.frozen],
                "scored_by": (score.fallback or score.criterion) if score else None,
            }
        )
    return tuple(rows)


def _guard_accuracy(settings: OptimizeSettings, comparison: Mapping[str, object]) -> None:
    """With an explicit budget, ``max-acc-drop`` is a guard on the held-out measure (the goal search has
    met it already by construction, on the same images)."""
    limit = settings.budget.max_acc_drop
    if limit is None or not settings.budget.explicit:
        return
    drop, measure = comparison.get("drop_points"), comparison.get("measure")
    if drop is None:
        raise InputError(
            "--max-acc-drop needs a held-out measure: these outputs have none (only an output error); "
            "give --task, or leave --max-acc-drop out"
        )
    if drop > limit:
        raise BudgetError(
            f"held-out {measure} fell by {drop:.2f} points, more than --max-acc-drop {limit:g}; nothing was written "
            "(keep more: a larger --target-flops, or leave the budget out and let the goal search choose)"
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
