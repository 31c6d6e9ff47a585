"""The public Python API behind the commands: each function is one whole job, from paths to results."""

from __future__ import annotations

import os
from pathlib import Path

from edgeprune.analysis import analyze
from edgeprune.cost import PlanCostModel, model_cost
from edgeprune.errors import InputError, VerificationError
from edgeprune.graph import load_model
from edgeprune.scoring.registry import DEFAULT_CRITERION
from edgeprune.summary import describe_model
from edgeprune.surgery import PruningPlan, apply_plan, simple_plan, verify as verify_plan

PathLike = str | os.PathLike


def inspect_model(model_path: PathLike) -> dict:
    model = load_model(model_path)
    return describe_model(model, analyze(model), model_cost(model))


def make_simple_plan(model_path: PathLike, ratio: float, *, random: bool = False, seed: int = 0) -> PruningPlan:
    model = load_model(model_path)
    analysis = analyze(model)
    if not analysis.prunable_groups:
        raise InputError(f"{model_path} has no prunable channel group; `edgeprune inspect` says why each is frozen")
    return simple_plan(analysis, ratio, random=random, seed=seed)


def prune_model(
    model_path: PathLike, plan_path: PathLike, output: PathLike, *, verify: bool = True, tolerance: float = 1e-4
) -> dict:
    """Apply a saved plan, prove it against the masked original, and write the result atomically."""
    plan = PruningPlan.load(plan_path)
    model = load_model(model_path)
    analysis = analyze(model)
    if not analysis.prunable_groups:
        raise InputError(f"{model_path} has no prunable channel group; `edgeprune inspect` says why each is frozen")
    pruned = apply_plan(model, analysis, plan)
    result = {
        "output": str(output),
        "cost_before": model_cost(model).to_dict(),
        "cost_after": model_cost(pruned).to_dict(),
        "predicted_after": PlanCostModel(model, analysis).cost_of_plan(plan.kept).to_dict(),
        "verification": None,
    }
    if verify:
        proof = verify_plan(model, analysis, plan, pruned, tolerance=tolerance)
        if not proof.passed:
            raise VerificationError(
                f"the pruned model differs from the masked original by {proof.max_rel:.2e} (relative), more "
                f"than the tolerance {tolerance:.0e}; nothing was written (rerun with --debug and report it)"
            )
        result["verification"] = proof.to_dict()
    pruned.save(Path(output))
    return result


def score_model(
    model_path: PathLike, calib: PathLike, *, criterion: str = DEFAULT_CRITERION, preprocessing: dict | None = None,
    limit: int | None = None, batch_size: int = 64, seed: int = 0, provider: str = "auto",
) -> dict:
    """Per prunable group, one score per channel (higher is more important), as plain data."""
    from edgeprune.calibration import load_calibration
    from edgeprune.scoring.measure import measure_and_score
    from edgeprune.scoring.registry import needs_activations, needs_grams

    model = load_model(model_path)
    analysis = analyze(model)
    data = None
    if needs_activations(criterion) or needs_grams(criterion):
        data = load_calibration(calib, model, limit=limit, seed=seed, **(preprocessing or {}))
    scores, _ = measure_and_score(model, analysis, data, criterion, batch_size=batch_size, provider=provider,
                                  seed=seed)
    return {
        "model_sha256": analysis.model_sha256,
        "criterion": criterion,
        "groups": {gid: {"scores": s.scores.tolist(), "scored_by": s.fallback or s.criterion} for gid, s in scores.items()},
    }


def finetune_model(
    student_path: PathLike, teacher_path: PathLike, train_data: PathLike, output: PathLike, settings, *,
    preprocessing: dict | None = None, limit: int | None = None, held_out: float = 0.1,
    plan_path: PathLike | None = None, report_path: PathLike | None = None, progress=None,
):
    """Distil a pruned model from its original on ``train_data`` and write it (and the recovery report).

    ``settings`` is a `DistillSettings`. ``held_out`` of the data is never trained on: it picks the weights
    kept. With ``plan_path`` (the plan the student was pruned with) the feature terms can be used.
    Returns the `RecoveryReport`; nothing is written unless everything succeeded.
    """
    import json

    from edgeprune.train import require_torch

    require_torch()  # before anything that imports it, so its absence is one line saying how to install it
    from edgeprune.calibration import load_calibration
    from edgeprune.graph.io import write_files_atomic
    from edgeprune.surgery.plan import validate_plan
    from edgeprune.train import distill
    from edgeprune.train.correspond import check_correspondence
    from edgeprune.train.executor import check_trainable

    student, teacher = load_model(student_path), load_model(teacher_path)
    check_correspondence(teacher, student)
    check_trainable(student)
    data = load_calibration(train_data, student, limit=limit, seed=settings.seed, **(preprocessing or {}))
    data.require(2, "training and a held-out judgement")
    train, held = data.split(held_out, seed=settings.seed)
    if plan_path is not None:
        from edgeprune.recovery import distill_outcome

        plan = PruningPlan.load(plan_path)
        analysis = analyze(teacher)
        validate_plan(plan, analysis)
        trained, report = distill_outcome(teacher, analysis, plan, student, train, held, settings, progress=progress)
    elif settings.feature_weight > 0:
        raise InputError("--feature-weight needs --plan (the plan the student was pruned with), which maps its "
                         "channels to the teacher's")
    else:
        trained, report = distill(student, teacher, train, held, settings, progress=progress)
    files = {Path(output): trained.serialized()}
    if report_path is not None:
        files[Path(report_path)] = (json.dumps(report.to_dict(), indent=1) + "\n").encode("utf-8")
    write_files_atomic(files)
    return report
