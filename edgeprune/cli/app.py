"""The click group and its shared options."""

from __future__ import annotations

import logging

import click

# name -> (module:attribute, one-line help). Commands are imported when run (or asked for their --help), so
# `edgeprune --help` loads neither numpy nor onnx; the lines here are what the top-level help shows.
COMMANDS: dict[str, tuple[str, str]] = {
    "optimize": (
        "edgeprune.cli.optimize_cmd:optimize_command",
        "Prune a model for a device (to a budget, or the fastest within an accuracy drop), with proof.",
    ),
    "inspect": ("edgeprune.cli.commands:inspect_command", "Show a model's inputs, cost and channel groups."),
    "plan": ("edgeprune.cli.commands:plan_command", "Write a simple plan: keep a ratio of every prunable group."),
    "prune": ("edgeprune.cli.commands:prune_command", "Apply a plan, prove the result and write the pruned model."),
    "score": ("edgeprune.cli.optimize_cmd:score_command", "Score every prunable channel and write the scores alone."),
    "finetune": (
        "edgeprune.cli.finetune_cmd:finetune_command",
        "Distil a pruned model from the original on the ONNX graph (needs torch).",
    ),
    "analyze": ("edgeprune.cli.analyze_cmd:analyze_command", "Measure the superization curve of a model."),
    "devices": ("edgeprune.cli.hardware_cmd:devices_command", "List the built-in device profiles."),
    "profile": ("edgeprune.cli.hardware_cmd:profile_command", "Measure a device profile on this machine."),
    "bench": ("edgeprune.cli.hardware_cmd:bench_command", "Time a model (or two, interleaved) on this machine."),
    "export": (
        "edgeprune.cli.export_cmd:export_command",
        "Export a torch model factory to ONNX, checked against torch.",
    ),
    "sweep": (
        "edgeprune.cli.sweep_cmd:sweep_command",
        "Cut a model to several budgets from one capture: accuracy against latency, and a pick.",
    ),
    "report": ("edgeprune.cli.report_cmd:report_command", "Re-render report.md and report.html from report.json."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on use (click's documented lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        import importlib

        module, attribute = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
