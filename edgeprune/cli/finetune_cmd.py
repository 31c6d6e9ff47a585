"""`finetune`: distil a pruned model from its original on the ONNX graph."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from edgeprune.cli.options import calibration_options, setting_option
from edgeprune.errors import InputError
from edgeprune.settings import OptimizeSettings

TRAIN_HELP = (
    "Training data, in the formats of --calib: a folder of images (class sub-folders give labels, "
    "which add a cross-entropy term), a flat folder of unlabelled images, or a .npz/.npy file."
)


@click.command("finetune")
@click.argument("student", type=click.Path(path_type=Path))
@click.option(
    "--teacher", type=click.Path(path_type=Path), required=True, help="The original model STUDENT was pruned from."
)
@calibration_options(flag="--train-data", help=TRAIN_HELP)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="Where to write the trained model."
)
@click.option(
    "--epochs", type=float, help="Passes over the training data [default: 1, unless --steps or --time-budget]."
)
@click.option("--steps", type=int, help="Optimiser steps (with --epochs: whichever ends first).")
@click.option("--time-budget", type=float, metavar="SECONDS", help="Stop after this many seconds (best weights kept).")
@click.option("--lr", type=float, default=0.01, show_default=True, help="Peak learning rate (annealed by a cosine).")
@click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), default="sgd", show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option(
    "--clip-norm",
    type=float,
    default=5.0,
    show_default=True,
    help="Clip the gradient's global norm to this before each step (BatchNorm-folded networks need it).",
)
@click.option("--weight-decay", type=float, default=0.0, show_default=True)
@click.option(
    "--temperature", type=float, default=4.0, show_default=True, help="Softening of classifier outputs in the KL term."
)
@click.option(
    "--label-weight",
    type=float,
    default=1.0,
    show_default=True,
    help="Weight of the cross-entropy term when the data has labels (0 ignores them).",
)
@click.option(
    "--feature-weight",
    type=float,
    default=0.0,
    show_default=True,
    help="Weight of the kept-channel feature terms at the pruned groups (needs --plan).",
)
@click.option("--plan", "plan_path", type=click.Path(path_type=Path), help="The plan the student was pruned with.")
@click.option(
    "--augment/--no-augment", default=True, show_default=True, help="Seeded flips and 2-pixel shifts of image inputs."
)
@click.option(
    "--held-out",
    type=float,
    default=0.1,
    show_default=True,
    help="Fraction of the training data never trained on: it chooses the weights kept.",
)
@setting_option(OptimizeSettings, "seed")
@click.option("--train-device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--report", "report_path", type=click.Path(path_type=Path), help="Also write the recovery report (JSON).")
def finetune_command(
    student,
    teacher,
    train_data,
    preprocessing,
    limit,
    output,
    epochs,
    steps,
    time_budget,
    lr,
    optimizer,
    batch_size,
    clip_norm,
    weight_decay,
    temperature,
    label_weight,
    feature_weight,
    plan_path,
    augment,
    held_out,
    seed,
    train_device,
    report_path,
) -> None:
    """Distil STUDENT (a pruned model) from its original: KL on the outputs, labels optional."""
    from edgeprune.api import finetune_model
    from edgeprune.train.settings import DistillSettings

    for given in (student, teacher):
        if Path(output).resolve() == Path(given).resolve():
            raise InputError(
                f"the output path {output} is an input model; choose another path (inputs are never overwritten)"
            )
    settings = DistillSettings(
        epochs=epochs,
        steps=steps,
        time_budget=time_budget,
        lr=lr,
        optimizer=optimizer,
        batch_size=batch_size,
        clip_norm=clip_norm,
        weight_decay=weight_decay,
        temperature=temperature,
        label_weight=label_weight,
        feature_weight=feature_weight,
        augment=augment,
        seed=seed,
        train_device=train_device,
    )
    report = finetune_model(
        student,
        teacher,
        train_data,
        output,
        settings,
        preprocessing=preprocessing,
        limit=limit,
        held_out=held_out,
        plan_path=plan_path,
        report_path=report_path,
        progress=training_progress(),
    )
    click.echo(recovery_text(report, output))


def recovery_text(report, output) -> str:
    measure = report.measure.replace("neg_rel_error", "minus relative output error")
    noun = "images" if report.measure != "neg_rel_error" else "samples"
    judged = (
        f"  held-out {measure}: {_fmt(report.measure, report.before)} -> {_fmt(report.measure, report.best)} "
        f"(best at step {report.best_step} of {report.steps}; {report.held_out_images} held-out {noun})"
    )
    trained = (
        f"  trained {report.steps} steps ({report.epochs:g} epochs, {report.images_seen} images) in "
        f"{report.seconds:.1f} s on {report.device}; labels {'used' if report.labels_used else 'not used'}; "
        f"stopped by {report.stopped}"
    )
    lines = [f"wrote {output}" if output else "recovery", judged, trained]
    lines += [f"  warning: {w}" for w in report.warnings]
    return "\n".join(lines)


def _fmt(measure: str, value: float) -> str:
    return f"{value:.2%}" if measure != "neg_rel_error" else f"{value:.4g}"


def training_progress():
    """A progress bar with the loss and the last held-out measure, on a terminal only."""
    if not sys.stderr.isatty():
        return None
    state: dict[str, Any] = {}

    def update(step: int, total: int | None, loss: float, measure: float | None) -> None:
        bar = state.get("bar")
        if bar is None and total:
            bar = state["bar"] = click.progressbar(
                length=total, label="finetune", file=sys.stderr, item_show_func=lambda text: text
            )
            bar.__enter__()
        if bar is None:
            return
        info = f"loss {loss:.4f}" + (f" held-out {measure:.2%}" if measure is not None and measure >= 0 else "")
        bar.update(step - bar.pos, info)
        if step >= bar.length:
            bar.__exit__(None, None, None)

    return update
