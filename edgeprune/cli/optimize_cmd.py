"""`optimize` and `score`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from edgeprune.cli import render
from edgeprune.cli.options import calibration_options, config_option, criterion_option, run_options, set_pairs
from edgeprune.cli.tree_options import SectionedCommand, section_option, tree_options
from edgeprune.settings import OptimizeSettings
from edgeprune.settings_tree import merge


@click.command("optimize", cls=SectionedCommand)
@click.argument("model", type=click.Path(path_type=Path), required=False)
@section_option(
    "--config",
    type=click.Path(path_type=Path),
    section="General",
    help="Settings from a TOML file ([optimize] table, keys as the long option names, nested by "
    "section) or a report.json to replay; flags override it.",
)
@section_option(
    "--save-config",
    type=click.Path(path_type=Path),
    section="General",
    help="Write the settings this run would use (TOML) to this file and stop.",
)
@section_option(
    "--dry-run",
    is_flag=True,
    section="General",
    help="Load the model and the device, print what can be pruned and how far, and stop (exit 1 when "
    "the budget cannot be reached). Nothing is captured or written.",
)
@section_option(
    "--json",
    "as_json",
    is_flag=True,
    section="Output",
    help="Print a summary object on stdout (logs and progress go to stderr).",
)
@section_option(
    "--rl-set",
    multiple=True,
    metavar="KEY=VALUE",
    section="Strategy",
    help="rl: any other setting of [selection.rl] or [selection.rl.agent], e.g. warmup=100, sigma=0.5, "
    "top-k=5, rerank=agreement, min-ratio=0.2.",
)
@section_option(
    "--finetune-set",
    multiple=True,
    metavar="KEY=VALUE",
    section="Reconstruction and recovery",
    help="Any other [recovery] setting: optimizer=adamw, batch-size=128, temperature=4, label-weight=1, "
    "feature-weight=0.5, augment=false, clip-norm=1, weight-decay=5e-4, batchnorm=false.",
)
@tree_options(OptimizeSettings)
def optimize_command(model, config, save_config, dry_run, as_json, rl_set, finetune_set, overrides) -> None:
    """Prune MODEL for a device, with calibration data, and prove and report the result.

    With no budget, the goal: the fastest plan on --device whose held-out accuracy drops by at most
    --max-acc-drop points (1 by default). Exit codes: 0 done, 1 a goal, budget or guard not met, 2 bad
    usage or input, 130 interrupted.
    """
    from edgeprune.settings import load_settings

    settings = load_settings(model, config, merge(overrides, set_pairs(rl_set, finetune_set)))
    if save_config is not None:
        settings.save(save_config)
        click.echo(f"wrote {save_config}", err=as_json)
        return
    if dry_run:
        from edgeprune.dry_run import dry_run as profile

        search = profile(settings)
        click.echo(json.dumps(search.to_dict(), indent=1) if as_json else render.dry_run_text(search))
        sys.exit(0 if search.reachable else 1)
    from edgeprune.job import resolve
    from edgeprune.pipeline import optimize

    settings, notes = resolve(settings)
    if notes:
        click.echo("edgeprune: " + "; ".join(notes), err=True)
    result = optimize(settings, progress=_progress())
    click.echo(json.dumps(render.optimize_summary(result), indent=1) if as_json else render.optimize_text(result))


@click.command("score")
@click.argument("model", type=click.Path(path_type=Path))
@config_option
@calibration_options
@criterion_option
@run_options
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Where to write the scores JSON.")
def score_command(model, calib, preprocessing, limit, criterion, batch_size, seed, provider, output) -> None:
    """Score every prunable channel of MODEL and write the scores alone."""
    from edgeprune.api import score_model
    from edgeprune.graph.io import write_text_atomic

    scores = score_model(
        model,
        calib,
        criterion=criterion,
        preprocessing=preprocessing,
        limit=limit,
        batch_size=batch_size,
        seed=seed,
        provider=provider,
    )
    write_text_atomic(output, json.dumps(scores, indent=1) + "\n")
    click.echo(f"wrote {output}: {len(scores['groups'])} groups scored by {criterion}")


def _progress():
    """A progress bar on a terminal only: pipelines and CI logs get none."""
    if not sys.stderr.isatty():
        return None
    bars: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = click.progressbar(length=total, label=stage, file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)
        if done >= total:
            bar.__exit__(None, None, None)

    return update
