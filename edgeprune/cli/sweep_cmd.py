"""`sweep`: several budgets from one capture, the trade-off table and plot, and an optional pick."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeprune.cli.tree_options import SectionedCommand, section_option, tree_options
from edgeprune.settings import OptimizeSettings


@click.command("sweep", cls=SectionedCommand)
@click.argument("model", type=click.Path(path_type=Path), required=False)
@section_option(
    "--targets",
    default="0.8,0.6,0.5,0.4,0.3,0.2",
    show_default=True,
    metavar="R,R,...",
    section="Goal and budget",
    help="Fractions of the MACs to keep (or reductions: 2x), one point each, from the lightest cut to the heaviest.",
)
@section_option(
    "--pick-max-drop",
    type=float,
    metavar="POINTS",
    section="Goal and budget",
    help="Write the point predicted fastest on --device within this many points of held-out accuracy as the "
    "output model (model.pruned.onnx, plan.json, report.json/md/html); exit 1 when none is.",
)
@section_option(
    "--config",
    type=click.Path(path_type=Path),
    section="General",
    help="Settings from a TOML file or a report.json, as for optimize; flags override it.",
)
@section_option("--json", "as_json", is_flag=True, section="Output", help="Print the sweep section as JSON on stdout.")
@tree_options(OptimizeSettings)
def sweep_command(model, targets, pick_max_drop, config, as_json, overrides) -> None:
    """Cut MODEL to each of --targets from one capture and one set of channel scores, and judge and time
    every point: held-out measure, latency predicted on --device and measured here. Writes sweep.json,
    sweep.md and sweep.png into --out (default ./<stem>.sweep/), and with --pick-max-drop the picked point's
    files as optimize does, all or none.

    Exit codes: 0 done, 1 a target cannot be reached or no point meets --pick-max-drop (the best is named),
    2 bad usage or input, 130 interrupted.
    """
    from edgeprune.reporting.sweep import parse_targets, run_sweep
    from edgeprune.settings import load_settings

    wanted = parse_targets(targets)
    settings = load_settings(model, config, overrides)
    result = run_sweep(settings, wanted, pick_max_drop, on_point=lambda p: click.echo(_point_line(p), err=True))
    if as_json:
        click.echo(json.dumps(result.section, indent=1))
        return
    click.echo(_summary(result))


def _point_line(point: dict) -> str:
    drop = "n/a" if point["drop_points"] is None else f"{point['drop_points']:.2f} points"
    measured = "" if point["measured_speedup"] is None else f", {point['measured_speedup']:.2f}x measured here"
    return (
        f"sweep: {point['target']:g} of the MACs: {point['predicted_speedup'] or 0:.3f}x predicted{measured}, "
        f"{drop} of held-out {point['measure'] or 'measure'} lost ({point['seconds']:.1f} s)"
    )


def _summary(result) -> str:
    from edgeprune.reporting.sweep_text import POINT_HEAD, point_rows

    section = result.section
    rows = [POINT_HEAD, *point_rows(section)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(POINT_HEAD))]
    table = ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    folder = next(iter(result.files.values())).parent
    lines = [f"wrote {folder}/: " + ", ".join(result.files), *table]
    if section["pick"]:
        chosen = section["points"][section["pick"]["chosen"]]
        lines.append(f"  picked {chosen['target']:g} of the MACs: {folder / 'model.pruned.onnx'}")
    timings = section["timings"]
    lines.append(
        f"  one capture and scoring ({timings.get('capture', 0) + timings.get('score', 0):.1f} s) for "
        f"{len(section['points'])} points ({timings['points']:.1f} s)"
    )
    return "\n".join(lines)
