"""The click group and its shared options."""

from __future__ import annotations

import logging

import click

from edgeprune.cli.analyze_cmd import analyze_command
from edgeprune.cli.export_cmd import export_command
from edgeprune.cli.finetune_cmd import finetune_command
from edgeprune.cli.commands import inspect_command, plan_command, prune_command
from edgeprune.cli.hardware_cmd import bench_command, devices_command, profile_command
from edgeprune.cli.optimize_cmd import optimize_command, score_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="edgeprune")
def cli(debug: bool, verbose: int) -> None:
    """edgeprune: prune a CNN given as ONNX so it runs faster on an edge device, with proof."""
    level = logging.DEBUG if verbose > 1 or debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    _quiet_graphsurgeon()


def _quiet_graphsurgeon() -> None:
    from onnx_graphsurgeon.logger import G_LOGGER

    G_LOGGER.severity = G_LOGGER.ERROR


cli.add_command(inspect_command)
cli.add_command(plan_command)
cli.add_command(prune_command)
cli.add_command(optimize_command)
cli.add_command(score_command)
cli.add_command(devices_command)
cli.add_command(profile_command)
cli.add_command(bench_command)
cli.add_command(analyze_command)
cli.add_command(finetune_command)
cli.add_command(export_command)
