"""`optimize`: the whole job, composed from the stages. Each stage is a plain function; this only wires them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeprune.candidate import Pruned, prune_and_recover
from edgeprune.errors import BudgetError, InputError
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
        from edgeprune.semiotic.depth_selector import widest

        reach = widest(job.selector(job.budget), job.model, job.analysis, settings.selection.semiotic.depth)
        reach.check_reachable({g.id: np.ones(g.channels) for g in job.analysis.prunable_groups})
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

    assert settings.model is not None and settings.output.out is not None  # resolve() filled both
    shipped = restore_dynamic_dims(chosen.final, read_model_proto(settings.model))  # runs at every size again
    return _write(
        settings.output.out,
        shipped,
        chosen.outcome.plan,
        report,
        kept_index_map(job.model, job.analysis, chosen.outcome.plan),
    )


def _report(
    job: Job, chosen: Pruned, goal: dict | None, clock: StageClock, timings: dict, sweep: dict | None = None
) -> Report:
    """The run's report: judged with and without reconstruction and recovery, priced, timed here
    (`edgeprune.reporting.build`); ``sweep``: the sweep it was picked from."""
    from edgeprune.reporting.build import build_report

    return build_report(job, chosen, goal, clock, timings, sweep=sweep)


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
    if float(drop) > limit:  # type: ignore[arg-type]  # a number whenever it is not None
        raise BudgetError(
            f"held-out {measure} fell by {drop:.2f} points, more than --max-acc-drop {limit:g}; nothing was written "
            "(keep more: a larger --target-flops, or leave the budget out and let the goal search choose)"
        )


def _write(out: Path, model, plan: PruningPlan, report: Report, index_map: dict) -> OptimizeResult:
    """Write model.pruned.onnx, plan.json, report.json, report.md and report.html: every file is made
    first, then all are moved in together, or none."""
    from edgeprune.reporting.files import beside, run_files, write_folder

    files = run_files(report, {**plan.to_dict(), "index_map": index_map}, extras=beside(Path(out)))
    paths = write_folder(Path(out), files, model)
    return OptimizeResult(paths["model.pruned.onnx"], paths["plan.json"], paths["report.json"], report)
