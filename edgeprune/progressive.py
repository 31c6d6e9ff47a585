"""The progressive schedule (AMC, NetAdapt): reach a large budget in K cuts, each scored, selected, cut, proven,
reconstructed and distilled on the model the previous cut left; the teacher is always the original model."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from edgeprune.analysis import analyze
from edgeprune.cost import PlanCostModel
from edgeprune.errors import VerificationError
from edgeprune.recovery import Costs, compose, distill_outcome, step_budget
from edgeprune.selection import Selector
from edgeprune.stages import PruneOutcome, StageClock, latency_model, prune_to_budget, training_progress
from edgeprune.surgery import apply_plan, verify


def prune_progressively(
    model, analysis, selector: Selector, fit, held_out, train, settings, progress=None, clock: StageClock | None = None
):
    """Reach ``selector``'s budget in ``settings.recovery.finetune_steps`` cuts, each scored, selected, cut, proven, reconstructed
    and distilled on the model the previous cut left; the teacher is always the original model.

    Returns the outcome against the original model (the composed plan, proven on the original) and the
    recovery section: per step its budget, MACs kept, and the distillation's record.
    """
    clock = clock or StageClock({})
    steps, budget_asked = settings.recovery.finetune_steps, selector.budget
    distill = settings.recovery.distill(settings.seed)
    kept: dict[str, tuple[int, ...]] = {}
    original = Costs(selector.full.macs, selector.full.params, selector.full_latency_ms)
    current, current_analysis, records = model, analysis, []
    outcome: PruneOutcome | None = None
    for step in range(1, steps + 1):
        costs = PlanCostModel(current, current_analysis)
        latency = (
            latency_model(settings.latency.device, current, current_analysis) if budget_asked.needs_latency else None
        )
        full = costs.cost_of_plan({})
        now = Costs(full.macs, full.params, latency.predict_full() if latency else None)
        budget = step_budget(budget_asked, step, steps, original, now)
        step_selector = Selector(current_analysis, costs, budget, latency)
        outcome = prune_to_budget(current, current_analysis, step_selector, fit, held_out, settings, progress, clock)
        kept = compose(kept, analysis, outcome.plan.kept)
        trained, report = distill_outcome(
            model,
            analysis,
            replace(outcome.plan, kept=kept),
            outcome.final,
            train,
            held_out,
            distill,
            progress=training_progress(progress),
        )
        clock.lap(f"recover {step}")
        if report.stopped == "interrupted" and step < steps:
            raise KeyboardInterrupt  # the budget needs the later cuts: stop the run, writing nothing
        records.append(
            {
                "step": step,
                "budget": budget.to_dict(),
                "macs_fraction": selector.costs.cost_of_plan(kept).macs / max(original.macs, 1),
                "recovery": report.to_dict(),
            }
        )
        current, current_analysis = trained, analyze(trained)
    assert outcome is not None  # steps >= 1 (RecoverySettings checks it)
    plan = replace(
        outcome.plan,
        kept=MappingProxyType(kept),
        settings=MappingProxyType(
            {**outcome.plan.settings, "budget": budget_asked.to_dict(), "progressive_steps": steps}
        ),
    )
    pruned = apply_plan(model, analysis, plan)
    proof = verify(
        model,
        analysis,
        plan,
        pruned,
        feeds=next(iter(held_out.batches(settings.batch_size))).inputs,
        tolerance=settings.checks.tolerance,
    )
    if not proof.passed:
        raise VerificationError(
            f"the composed plan differs from the masked original by {proof.max_rel:.2e}; nothing was written"
        )
    final = PruneOutcome(plan, pruned, current, proof, outcome.scores, outcome.scoring, outcome.refit)
    return final, {"steps": records, "final": records[-1]["recovery"]}
