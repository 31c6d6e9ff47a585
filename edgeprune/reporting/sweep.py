"""`edgeprune sweep`: one model cut to several MAC budgets from one capture, to see the trade-off between
held-out accuracy and latency before choosing.

The calibration pass and the channel scores are measured once and reused by every point (the goal search
does the same), so a sweep costs one capture plus, per point, what a cut costs: selection, surgery and
proof, reconstruction (and distillation with recovery options), the held-out judgement and the timing on
this machine. ``--pick-max-drop`` ships the point predicted fastest on the device within that drop, with
the same files as `optimize` (its report.json replays it with `optimize --config`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgeprune.errors import BudgetError, InputError
from edgeprune.selection import Budget

logger = logging.getLogger(__name__)

DEFAULT_TARGETS = (0.8, 0.6, 0.5, 0.4, 0.3, 0.2)
SWEEP_FILES = ("sweep.json", "sweep.md", "sweep.png")


@dataclass(frozen=True)
class SweepResult:
    section: dict  # the sweep: targets, points (with the Pareto front), pick
    files: dict  # name -> path of everything written
    report: object | None  # the picked point's `Report`, with --pick-max-drop


def parse_targets(text: str) -> tuple[float, ...]:
    """``0.8,0.6,0.4`` (fractions of the MACs to keep; ``2x`` means 0.5): each in (0, 1), each once, from
    the lightest cut to the heaviest."""
    values = []
    for part in str(text).split(","):
        raw = part.strip()
        try:
            value = float(raw[:-1]) if raw.lower().endswith("x") else float(raw)
        except ValueError:
            raise InputError(
                f"--targets: '{raw}' is not a fraction of the MACs to keep (0.5) nor a reduction (2x); "
                "e.g. --targets 0.8,0.6,0.4"
            ) from None
        if raw.lower().endswith("x"):
            value = 1.0 / value if value > 1.0 else 0.0  # 1x keeps everything, which is out of range too
        if not 0.0 < value < 1.0:
            raise InputError(
                f"--targets: '{raw}' is out of range: each target is the fraction of the MACs to keep, in (0, 1) "
                "(0.5, or 2x for the same), e.g. --targets 0.8,0.6,0.4"
            )
        if value in values:
            raise InputError(f"--targets: {value:g} is given twice; give each target once")
        values.append(value)
    if values != sorted(values, reverse=True):
        order = ",".join(f"{v:g}" for v in sorted(values, reverse=True))
        raise InputError(f"--targets must go from the lightest cut to the heaviest (descending): give {order}")
    return tuple(values)


def check_settings(settings) -> None:
    """What a sweep cannot take: budgets of its own (the targets are the budgets), the goal's drop, and a
    progressive schedule (it scores again at every cut, which the one capture exists to avoid)."""
    if settings.budget.explicit:
        raise InputError(
            "sweep takes its budgets from --targets: leave out --target-flops, --target-params, --target-latency "
            "and --target-speedup"
        )
    if settings.budget.max_acc_drop is not None:
        raise InputError("sweep picks a point with --pick-max-drop POINTS: leave out --max-acc-drop")
    if settings.recovery.steps > 1:
        raise InputError(
            "--finetune-steps above 1 scores the model again at every cut, and a sweep scores it once for every "
            "point: use --finetune-steps 1 with sweep"
        )


def run_sweep(
    settings,
    targets: Sequence[float],
    pick_max_drop: float | None = None,
    progress=None,
    on_point: Callable[[dict], None] | None = None,
) -> SweepResult:
    """Cut to every target from one capture, judge and time each point, write sweep.json/md/png (and, with
    ``pick_max_drop``, the picked point's model, plan and reports) into ``settings.output.out``: all, or none."""
    from edgeprune.candidate import prune_and_recover
    from edgeprune.job import load_job, resolve, with_data
    from edgeprune.stages import StageClock, score_channels

    check_settings(settings)
    if pick_max_drop is not None and not pick_max_drop >= 0:
        raise InputError(
            f"--pick-max-drop is the most points the picked point may lose: zero or more, got {pick_max_drop}"
        )
    if settings.output.out is None:
        settings = replace(
            settings, output=replace(settings.output, out=Path(f"{Path(settings.model or 'model').stem}.sweep"))
        )
    settings, _ = resolve(settings)
    timings: dict[str, float] = {}
    clock = StageClock(timings)
    job = load_job(settings, False)
    ones = {g.id: np.ones(g.channels) for g in job.analysis.prunable_groups}
    for target in targets:  # every budget is checked before any work
        try:
            job.selector(_budget(job, target)).check_reachable(ones)
        except BudgetError as exc:
            raise BudgetError(f"--targets {target:g}: {exc}") from None
    clock.lap("load")
    job = with_data(job)
    scored = score_channels(job.model, job.analysis, job.fit, job.settings, progress, clock)
    points, candidates = [], []
    for target in targets:
        start = time.perf_counter()
        candidate = prune_and_recover(job, _budget(job, target), progress, StageClock({}), scored=scored)
        point = _point(job, target, candidate, time.perf_counter() - start)
        points.append(point)
        candidates.append(candidate if pick_max_drop is not None else None)  # only a pick needs the models
        if on_point is not None:
            on_point(point)
    timings["points"] = round(sum(p["seconds"] for p in points), 3)
    _mark_pareto(points)
    chosen = _pick(points, pick_max_drop, job)
    section = {
        "kind": "macs",
        "targets": list(targets),
        "device": job.latency.profile.name,
        "measure": next((p["measure"] for p in points if p["measure"]), None),
        "points": points,
        "pick": None if chosen is None else {"max_drop_points": pick_max_drop, "chosen": chosen},
        "timings": timings,
    }
    from edgeprune.reporting.sweep_files import write_sweep

    return write_sweep(job, section, None if chosen is None else (targets[chosen], candidates[chosen]), clock)


def _budget(job, target: float) -> Budget:
    return Budget(macs=target, floor=job.settings.budget.floor, alignment=job.alignment)


def _point(job, target: float, candidate, seconds: float) -> dict:
    """One point: its cut, its held-out judgement, its latency predicted on the device and measured here."""
    from edgeprune.candidate import judge
    from edgeprune.reporting.build import host_measurement

    comparison = judge(job, candidate.final)
    selector = job.selector(_budget(job, target))
    kept = candidate.outcome.plan.kept
    macs, params = selector.fractions(kept)
    predicted = selector.latency_ms(kept)
    host = host_measurement(job, candidate.final)
    point = {
        "target": target,
        "macs_fraction": round(macs, 6),
        "params_fraction": round(params, 6),
        "predicted_ms": predicted,
        "predicted_speedup": selector.full_latency_ms / predicted if predicted > 0 else None,
        "measured_ms": host.pruned["median_ms"] if host else None,
        "measured_speedup": host.speedup if host else None,
        "noise": host.noise if host else None,
        "measure": comparison.measure,
        "value": _value(comparison),
        "drop_points": comparison.drop_points,
        "output_error": comparison.output_error,
        "pareto": False,
        "seconds": round(seconds, 3),
    }
    logger.info(
        "sweep: %g of the MACs, %.3fx predicted, drop %s", target, point["predicted_speedup"] or 0, point["drop_points"]
    )
    return point


def _value(comparison) -> float | None:
    """The held-out measure itself (accuracy, agreement, or the task's headline measure)."""
    measure = comparison.measure
    if measure == "accuracy":
        return comparison.accuracy_pruned
    if measure == "agreement":
        return comparison.agreement
    return None if measure is None else comparison.measures.get(measure)


def _mark_pareto(points: list[dict]) -> None:
    """A point is on the front when no other is both as fast (predicted on the device) and as accurate,
    and better in one of the two."""
    judged = [p for p in points if p["value"] is not None]
    for p in judged:
        p["pareto"] = not any(
            q is not p
            and q["predicted_ms"] <= p["predicted_ms"]
            and q["value"] >= p["value"]
            and (q["predicted_ms"] < p["predicted_ms"] or q["value"] > p["value"])
            for q in judged
        )


def _pick(points: list[dict], limit: float | None, job) -> int | None:
    """The point predicted fastest on the device among those within ``limit`` points; none: exit 1."""
    if limit is None:
        return None
    if all(p["drop_points"] is None for p in points):
        raise InputError(
            "--pick-max-drop needs a held-out measure: these outputs have none (only an output error); give --task"
        )
    within = [i for i, p in enumerate(points) if p["drop_points"] is not None and p["drop_points"] <= limit + 1e-9]
    if within:
        return max(within, key=lambda i: points[i]["predicted_speedup"] or 0.0)
    best = min((p for p in points if p["drop_points"] is not None), key=lambda p: p["drop_points"])
    raise BudgetError(
        f"no sweep point is within --pick-max-drop {limit:g}: the best, {best['target']:g} of the MACs "
        f"({best['predicted_speedup']:.3f}x predicted on {job.latency.profile.name}), lost {best['drop_points']:.2f} "
        f"points of held-out {best['measure']}; nothing was written (allow more, or add a lighter target)"
    )
