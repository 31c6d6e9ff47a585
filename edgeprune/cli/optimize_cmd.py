"""`optimize` and `score`."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from edgeprune.cli import render
from edgeprune.cli.options import calibration_options, config_option
from edgeprune.cli.recovery_options import recovery_options
from edgeprune.cli.search_options import search_options
from edgeprune.cli.semiotic_options import semiotic_options
from edgeprune.errors import InputError
from edgeprune.scoring.registry import DEFAULT_CRITERION
from edgeprune.selection.strategies import STRATEGIES


@click.command("optimize")
@click.argument("model", type=click.Path(path_type=Path))
@config_option
@calibration_options
@click.option("--target-flops", help="FLOPs (MACs) to keep: a fraction (0.2) or a reduction (5x).")
@click.option("--target-params", help="Parameters to keep: a fraction (0.5) or a reduction (2x).")
@click.option("--target-latency", help="Predicted latency on --device at most this: 5ms, 500us.")
@click.option("--target-speedup", help="Predicted speed-up on --device at least this: 2x.")
@click.option("--device", help="Target device: a name or alias (`edgeprune devices`) or a profile .toml [default: host].")
@click.option("--strategy", type=click.Choice(sorted(STRATEGIES)), default="mi", show_default=True,
              help="mi: global ranking by the criterion; uniform: the same ratio in every layer; rl: the RL agent; "
              "semiotic: greedy, where the superization curve changes least.")
@search_options
@semiotic_options
@click.option("--criterion", default=DEFAULT_CRITERION, show_default=True,
              help="refit-error (what the least-squares reconstruction loses without the channel), aura-mi, "
              "aura-mi-label, entropy, hist-mi, l1, activation, random.")
@click.option("--normalise", "normalisation", type=click.Choice(["mean", "max", "none"]), default="mean",
              show_default=True, help="How the mi strategy puts each group's scores on one scale: by the group's "
              "mean, by its best channel, or raw.")
@click.option("--floor", type=float, default=0.25, show_default=True, help="Keep at least this fraction of every group.")
@click.option("--align", "alignment", type=int,
              help="Kept channel counts are multiples of this [default: the --device's alignment; host's, 8, "
              "without one]. --align 1 leaves them free.")
@recovery_options
@click.option("--reconstruct/--no-reconstruct", default=True, show_default=True,
              help="Refit the layers after pruned channels by least squares on calibration activations.")
@click.option("--samples-per-image", type=int, default=16, show_default=True,
              help="Output positions per calibration image in the least-squares rows of conv layers "
              "(reconstruction and refit-error).")
@click.option("--ridge", type=float, default=1e-3, show_default=True,
              help="Ridge penalty of those least-squares fits, relative to the mean energy of their inputs.")
@click.option("--held-out", type=float, default=0.2, show_default=True,
              help="Fraction of the calibration data kept aside to judge the result.")
@click.option("--max-acc-drop", type=float, help="Fail (exit 1, nothing written) if accuracy falls by more points.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--provider", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for model.pruned.onnx, plan.json, report.json.")
def optimize_command(model, calib, preprocessing, limit, target_flops, target_params, strategy, criterion,
                     normalisation, floor,
                     alignment, reconstruct, samples_per_image, ridge, held_out, max_acc_drop, batch_size, seed, provider, out, target_latency,
                     target_speedup, device, search, semiotic, recovery) -> None:
    """Prune MODEL to a budget, with calibration data, and prove and report the result."""
    from edgeprune.pipeline import OptimizeConfig, optimize
    from edgeprune.cli.hardware_cmd import alignment_for
    from edgeprune.selection import Budget, parse_fraction
    from edgeprune.selection.budget import parse_latency, parse_speedup

    budget = Budget(
        macs=parse_fraction(target_flops, "--target-flops") if target_flops is not None else None,
        params=parse_fraction(target_params, "--target-params") if target_params is not None else None,
        floor=floor, alignment=alignment_for(alignment, device),
        latency_ms=parse_latency(target_latency) if target_latency is not None else None,
        speedup=parse_speedup(target_speedup) if target_speedup is not None else None,
    )
    if Path(out).resolve() == Path(model).resolve():
        raise InputError("--out is the input model; give a folder")
    config = OptimizeConfig(model=model, calib=calib, out=out, budget=budget, strategy=strategy, criterion=criterion,
                            normalisation=normalisation, reconstruct=reconstruct, samples_per_image=samples_per_image,
                            ridge=ridge, held_out=held_out, limit=limit,
                            batch_size=batch_size, seed=seed,
                            provider=provider, max_acc_drop=max_acc_drop, preprocessing=preprocessing, search=search,
                            semiotic=semiotic, recovery=recovery)
    config = dataclasses.replace(config, device=device)
    result = optimize(config, progress=_progress())
    click.echo(render.optimize_text(result))


@click.command("score")
@click.argument("model", type=click.Path(path_type=Path))
@config_option
@calibration_options
@click.option("--criterion", default=DEFAULT_CRITERION, show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--provider", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Where to write the scores JSON.")
def score_command(model, calib, preprocessing, limit, criterion, batch_size, seed, provider, output) -> None:
    """Score every prunable channel of MODEL and write the scores alone."""
    from edgeprune.api import score_model
    from edgeprune.graph.io import write_text_atomic

    scores = score_model(model, calib, criterion=criterion, preprocessing=preprocessing, limit=limit,
                         batch_size=batch_size, seed=seed, provider=provider)
    write_text_atomic(output, json.dumps(scores, indent=1) + "\n")
    click.echo(f"wrote {output}: {len(scores['groups'])} groups scored by {criterion}")


def _progress():
    """A progress bar on a terminal only: pipelines and CI logs get none."""
    if not sys.stderr.isatty():
        return None
    bars: dict[str, object] = {}

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = click.progressbar(length=total, label=stage, file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)
        if done >= total:
            bar.__exit__(None, None, None)

    return update
