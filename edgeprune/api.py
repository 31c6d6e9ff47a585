"""The public Python API behind the commands: each function is one whole job, from paths to results."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from edgeprune.analysis import analyze
from edgeprune.cost import CostSummary, PlanCostModel, model_cost
from edgeprune.errors import InputError, VerificationError
from edgeprune.graph import (
    dynamic_dims,
    fix_input_shapes,
    input_shapes_of,
    load_model,
    require_concrete,
    restore_dynamic_dims,
    shapes_from_calibration,
    with_input_shapes,
)
from edgeprune.scoring.registry import DEFAULT_CRITERION
from edgeprune.summary import describe_model
from edgeprune.surgery import PruningPlan, apply_plan, simple_plan
from edgeprune.surgery import verify as verify_plan

PathLike = str | os.PathLike
InputShapeSpecs = Sequence[str]  # `--input-shape` values: "x=1,3,640,640", or "1,3,640,640" for one input


def inspect_model(model_path: PathLike, *, input_shapes: InputShapeSpecs = ()) -> dict:
    """The model as plain data. Its cost is at its input size: where height or width is dynamic and no
    ``input_shapes`` fix it, ``cost`` is None and ``dynamic`` lists the open dimensions (never a made-up size)."""
    model = fix_input_shapes(load_model(model_path), input_shapes)
    dynamic = dynamic_dims(model)
    cost = None if dynamic else model_cost(model)
    description = describe_model(model, analyze(model), cost or CostSummary(0, 0, 0, 0))
    description["cost"] = cost.to_dict() if cost is not None else None
    description["dynamic"] = [d.to_dict() for d in dynamic]
    description["input_shapes"] = input_shapes_of(model)
    return description


def make_simple_plan(
    model_path: PathLike, ratio: float, *, random: bool = False, seed: int = 0, input_shapes: InputShapeSpecs = ()
) -> PruningPlan:
    """Keep ``ratio`` of every prunable group; ``input_shapes`` analyses the model at that size (the size
    `prune` will be given), and a bad one is refused before anything is written."""
    model = fix_input_shapes(load_model(model_path), input_shapes)
    analysis = analyze(model)
    if not analysis.prunable_groups:
        raise InputError(f"{model_path} has no prunable channel group; `edgeprune inspect` says why each is frozen")
    return simple_plan(analysis, ratio, random=random, seed=seed)


def prune_model(
    model_path: PathLike,
    plan_path: PathLike,
    output: PathLike,
    *,
    verify: bool = True,
    tolerance: float = 1e-4,
    input_shapes: InputShapeSpecs = (),
) -> dict:
    """Apply a saved plan, prove it against the masked original, and write the result atomically.

    Costs and the proof are at the model's input size (``input_shapes`` fixes a dynamic height or width);
    the file written keeps the original's dynamic dimensions, so it runs at every size the original did."""
    plan = PruningPlan.load(plan_path)
    loaded = load_model(model_path)
    model = fix_input_shapes(loaded, input_shapes)
    require_concrete(model, "pruning (its cost and its proof)")
    analysis = analyze(model)
    if not analysis.prunable_groups:
        raise InputError(f"{model_path} has no prunable channel group; `edgeprune inspect` says why each is frozen")
    pruned = apply_plan(model, analysis, plan)
    result = {
        "output": str(output),
        "input_shapes": input_shapes_of(model),
        "cost_before": model_cost(model).to_dict(),
        "cost_after": model_cost(pruned).to_dict(),
        "predicted_after": PlanCostModel(model, analysis).cost_of_plan(plan.kept).to_dict(),
        "verification": None,
    }
    pruned = restore_dynamic_dims(pruned, loaded)
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
    model_path: PathLike,
    calib: PathLike,
    *,
    criterion: str = DEFAULT_CRITERION,
    preprocessing: dict | None = None,
    limit: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    provider: str = "auto",
) -> dict:
    """Per prunable group, one score per channel (higher is more important), as plain data."""
    from edgeprune.calibration import load_calibration
    from edgeprune.scoring.measure import measure_and_score
    from edgeprune.scoring.registry import needs_activations, needs_grams

    model = load_model(model_path)
    data = None
    if needs_activations(criterion) or needs_grams(criterion):
        data = load_calibration(calib, model, limit=limit, seed=seed, **(preprocessing or {}))
        model = with_input_shapes(model, shapes_from_calibration(model, data))  # a dynamic size: the data's
    analysis = analyze(model)
    scores, _ = measure_and_score(model, analysis, data, criterion, batch_size=batch_size, provider=provider, seed=seed)
    return {
        "model_sha256": analysis.model_sha256,
        "criterion": criterion,
        "groups": {
            gid: {"scores": s.scores.tolist(), "scored_by": s.fallback or s.criterion} for gid, s in scores.items()
        },
    }


def finetune_model(
    student_path: PathLike,
    teacher_path: PathLike,
    train_data: PathLike,
    output: PathLike,
    settings,
    *,
    preprocessing: dict | None = None,
    limit: int | None = None,
    held_out: float = 0.1,
    plan_path: PathLike | None = None,
    report_path: PathLike | None = None,
    progress=None,
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
        raise InputError(
            "--feature-weight needs --plan (the plan the student was pruned with), which maps its "
            "channels to the teacher's"
        )
    else:
        trained, report = distill(student, teacher, train, held, settings, progress=progress)
    files: dict[str | os.PathLike, bytes] = {Path(output): trained.serialized()}
    if report_path is not None:
        files[Path(report_path)] = (json.dumps(report.to_dict(), indent=1) + "\n").encode("utf-8")
    write_files_atomic(files)
    return report
