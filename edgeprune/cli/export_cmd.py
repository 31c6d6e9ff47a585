"""`export`: a torch model built by a factory to an ONNX file, checked against torch before it is written."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.argument("factory", metavar="MODULE:FACTORY")
@click.option(
    "--input-shape",
    required=True,
    metavar="N,C,H,W",
    help="Shape of one input batch, comma separated (e.g. 1,3,224,224).",
)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Where to write the ONNX model.")
@click.option(
    "--opset",
    type=click.IntRange(min=1),
    default=17,
    show_default=True,
    help="ONNX opset (the dynamo exporter writes at least 18 where it must).",
)
@click.option(
    "--exporter",
    type=click.Choice(["legacy", "dynamo"]),
    default="legacy",
    show_default=True,
    help="legacy: TorchScript tracing; dynamo: torch.export and onnxscript.",
)
@click.option("--static-batch", is_flag=True, help="Fix the batch size to --input-shape's [default: dynamic].")
@click.option(
    "--tolerance",
    type=float,
    default=1e-4,
    show_default=True,
    help="Largest relative difference between ONNX Runtime's and torch's outputs accepted.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random check inputs.")
def export_command(factory, input_shape, output, opset, exporter, static_batch, tolerance, seed) -> None:
    """Export the torch model FACTORY builds to ONNX, proven against torch in ONNX Runtime.

    MODULE:FACTORY names a function or class called with no arguments that returns a torch.nn.Module (or an
    nn.Module instance), e.g. mymodels:build for build() in ./mymodels.py, or torchvision.models:resnet18.
    The model is exported in eval mode; nothing is written unless ONNX Runtime reproduces torch.
    """
    from edgeprune.export_factory import export_factory

    result = export_factory(
        factory,
        input_shape,
        output,
        opset=opset,
        exporter=exporter,
        dynamic_batch=not static_batch,
        tolerance=tolerance,
        seed=seed,
    )
    batch = "dynamic batch" if result.dynamic_batch else "static batch"
    if not static_batch and not result.dynamic_batch:
        batch += "; the exporter could not keep it dynamic"
    batches = " and ".join(str(b) for b in result.checked_batches)
    click.echo(f"wrote {result.path} ({result.exporter} exporter, opset {result.opset}, {batch})")
    click.echo(
        f"  check     ONNX Runtime == torch within {result.max_rel_diff:.2g} (max relative difference, "
        f"tolerance {result.tolerance:g}) on random inputs of shape {','.join(map(str, result.input_shape))}"
        f" at batch {batches}"
    )
