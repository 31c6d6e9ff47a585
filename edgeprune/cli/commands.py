"""`inspect`, `plan` and `prune`: each builds objects, calls the library, and renders the result."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeprune.cli import render
from edgeprune.cli.shape_options import input_shape_option
from edgeprune.errors import InputError

MODEL = click.argument("model", type=click.Path(path_type=Path))


@click.command("inspect")
@MODEL
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--all-groups", is_flag=True, help="List every group, not only the first 40.")
@input_shape_option
def inspect_command(model: Path, as_json: bool, all_groups: bool, input_shapes: tuple[str, ...]) -> None:
    """Show a model's inputs, outputs, ops, cost, and channel groups (prunable or frozen, and why)."""
    from edgeprune.api import inspect_model

    description = inspect_model(model, input_shapes=input_shapes)
    if as_json:
        click.echo(json.dumps(description, indent=1))
    else:
        click.echo(render.model_text(description, limit=None if all_groups else 40))


@click.command("plan")
@MODEL
@click.option("--ratio", type=float, required=True, help="Fraction of each prunable group's channels to KEEP.")
@click.option("--random", "random_pick", is_flag=True, help="Keep random channels instead of the first ones.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --random.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Where to write the plan JSON.")
@input_shape_option
def plan_command(
    model: Path, ratio: float, random_pick: bool, seed: int, output: Path, input_shapes: tuple[str, ...]
) -> None:
    """Write a simple plan: keep RATIO of every prunable group, and of every part of it that a split, a slice
    or a grouped conv reads alone (for testing and scripting)."""
    from edgeprune.api import make_simple_plan

    _refuse_same_path(model, output)
    plan = make_simple_plan(model, ratio, random=random_pick, seed=seed, input_shapes=input_shapes)
    plan.save(output)
    kept = sum(len(v) for v in plan.kept.values())
    click.echo(f"wrote {output}: {len(plan.kept)} groups, {kept} channels kept")


@click.command("prune")
@MODEL
@click.option("--plan", "plan_path", type=click.Path(path_type=Path), required=True, help="A plan JSON file.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Where to write the pruned model.")
@click.option(
    "--tolerance",
    type=float,
    default=1e-4,
    show_default=True,
    help="Largest relative output difference allowed against the masked original.",
)
@click.option("--no-verify", is_flag=True, help="Skip the proof against the masked original.")
@input_shape_option
def prune_command(
    model: Path, plan_path: Path, output: Path, tolerance: float, no_verify: bool, input_shapes: tuple[str, ...]
) -> None:
    """Apply a plan: remove its channels, prove the result, and write the pruned model."""
    from edgeprune.api import prune_model

    _refuse_same_path(model, output)
    result = prune_model(model, plan_path, output, verify=not no_verify, tolerance=tolerance, input_shapes=input_shapes)
    click.echo(render.prune_text(result))


def _refuse_same_path(model: Path, output: Path) -> None:
    if output.resolve() == model.resolve():
        raise InputError(
            f"the output path {output} is the input model; choose another path (the input is never overwritten)"
        )
