"""Building one run's report from its job and its chosen candidate: judged with and without reconstruction
and recovery, priced, timed on this machine, with every table the renderers show."""

from __future__ import annotations

from collections.abc import Mapping

from edgeprune.reporting.report import Report
from edgeprune.reporting.tables import gather_warnings, group_rows, layer_table, plan_summary, weight_change


def build_report(job, chosen, goal: Mapping | None, clock, timings: dict, sweep: Mapping | None = None) -> Report:
    """The report of ``chosen`` (a `candidate.Pruned`) cut from ``job``: ``goal`` is the goal search's
    section, ``sweep`` the sweep's it was picked from (either may be None)."""
    from edgeprune.candidate import judge_all
    from edgeprune.cost import model_cost

    settings, outcome = job.settings, chosen.outcome
    reconstructed_only = outcome.refit is not None and settings.recovery.steps == 1  # progressive: distilled already
    judged = [outcome.pruned] + [outcome.final] * reconstructed_only + [chosen.final] * settings.recovery.enabled
    comparisons = iter(judge_all(job, judged))  # the original run once for all of them
    plain = next(comparisons)
    rebuilt = next(comparisons) if reconstructed_only else None
    recovered = next(comparisons) if settings.recovery.enabled else None
    clock.lap("evaluate")
    latency = latency_report(job, chosen.final, outcome.plan)
    clock.lap("latency")
    reconstruction = outcome.refit.to_dict() if outcome.refit else None
    one_cut = recovered is not None and settings.recovery.steps == 1  # progressive: no model before recovery
    moved = weight_change(outcome.final, chosen.final) if one_cut else None
    groups = group_rows(job.analysis, outcome.plan, outcome.scores)
    return Report(
        settings=settings.to_dict(),
        model=model_section(job),
        cost_before=model_cost(job.model).to_dict(),
        cost_after=model_cost(chosen.final).to_dict(),
        layers=groups,
        verification=outcome.proof.to_dict(),
        comparison_pruned=plain.to_dict(),
        comparison_reconstructed=rebuilt.to_dict() if rebuilt else None,
        comparison_recovered=recovered.to_dict() if recovered else None,
        recovery=chosen.recovery,
        reconstruction=reconstruction,
        scoring=outcome.scoring,
        timings=timings,
        latency=latency,
        goal=goal,
        budget=dict(outcome.plan.settings.get("budget", {})),
        plan=plan_summary(outcome.plan, groups),
        layer_table=layer_table(latency, reconstruction, moved),
        warnings=gather_warnings(latency, chosen.recovery, job.held_out.count, outcome.scoring),
        sweep=sweep,
    )


def model_section(job) -> dict:
    """The model as the run saw it: file, hash, inputs and outputs, normalisation, size, and the data."""
    from edgeprune.graph import input_shapes_of

    model, data = job.model, job.calibration

    def tensor(name: str) -> dict:
        shape = [d if isinstance(d, int) and d > 0 else "?" for d in (model.shapes.get(name) or ())]
        dtype = model.dtypes.get(name)
        return {"name": name, "dtype": str(dtype) if dtype is not None else "?", "shape": shape}

    return {
        "path": str(job.settings.model),
        "sha256": model.source_sha256,
        "opset": model.opset,
        "inputs": [tensor(name) for name in model.input_names],
        "outputs": [tensor(name) for name in model.output_names],
        "normalisation": list(model.notes),
        "input_shapes": input_shapes_of(model),
        "calibration": {
            "images": data.count,
            "fit": job.fit.count,
            "held_out": job.held_out.count,
            "labels": data.labels is not None,
            "preprocessing": dict(data.preprocessing),
        },
    }


def latency_report(job, final, plan) -> dict:
    """Predicted latency on the target and, interleaved on this machine, measured latency before and after."""
    from edgeprune.hardware.validation import latency_section

    kept, removed = plan.kept, ()
    if plan.removed_blocks or any(len(indices) == 0 for indices in plan.kept.values()):
        from edgeprune.surgery.depth import plan_blocks, with_removed

        _, removed = plan_blocks(job.model, job.analysis, plan)
        kept = with_removed(plan.kept, removed)  # a block named but not emptied is priced as gone too
    keep = job.analysis.keep_mask(kept)
    return latency_section(job.latency, keep, host_measurement(job, final), removed_blocks=len(removed))


def host_measurement(job, final):
    """The original and ``final`` timed on this machine, interleaved (None with ``latency-rounds 0``)."""
    from edgeprune.hardware.validation import measure_on_host

    settings = job.settings
    rounds = settings.latency.latency_rounds
    if rounds <= 0:
        return None
    auto_cpu = settings.provider == "auto" and job.latency.profile.provider == "cpu"
    provider = "cpu" if auto_cpu else settings.provider
    return measure_on_host(job.model.serialized(), final.serialized(), provider=provider, rounds=rounds)
