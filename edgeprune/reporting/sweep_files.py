"""The sweep's files: sweep.json (the points, under the report schema's ``sweep_file``), sweep.md (the
table) and sweep.png (accuracy against latency, the Pareto front marked); with a pick, the picked point's
model.pruned.onnx, plan.json and report.json/md/html beside them. All are made, then written together."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from edgeprune.reporting.schema import SCHEMA_VERSION, errors, plain
from edgeprune.reporting.sweep_text import points_markdown

logger = logging.getLogger(__name__)


def write_sweep(job, section: dict, picked, clock):
    """Write the sweep (and the pick: ``(target, candidate)`` or None) into ``job.settings.output.out``."""
    from edgeprune import __version__
    from edgeprune.reporting.figures import sweep_figure
    from edgeprune.reporting.files import beside, run_files, write_folder
    from edgeprune.reporting.report import environment
    from edgeprune.reporting.sweep import SweepResult

    settings = job.settings
    document = plain(
        {
            "schema_version": SCHEMA_VERSION,
            "edgeprune_version": __version__,
            "settings": settings.to_dict(),
            "model": {"path": str(settings.model), "sha256": job.model.source_sha256},
            "environment": environment(),
            "sweep": section,
        }
    )
    problems = errors(document, "sweep_file")
    if problems:
        logger.warning("sweep.json does not conform to its schema: %s", "; ".join(problems[:5]))
    files = {
        "sweep.json": (json.dumps(document, indent=1, allow_nan=False) + "\n").encode("utf-8"),
        "sweep.md": sweep_markdown(document).encode("utf-8"),
        "sweep.png": sweep_figure(section),
    }
    out = Path(settings.output.out)
    if picked is None:
        return SweepResult(section, write_folder(out, files), None)
    report, plan_data, shipped = _picked(job, section, picked, clock)
    files = run_files(report, plan_data, extras=beside(out), extra=files)
    return SweepResult(section, write_folder(out, files, shipped), report)


def _picked(job, section: dict, picked, clock):
    """The picked point as `optimize` would have written it with ``--target-flops`` at its target: so its
    report.json replays it with `optimize --config`."""
    from edgeprune.graph import read_model_proto, restore_dynamic_dims
    from edgeprune.reporting.build import build_report
    from edgeprune.surgery.index_map import kept_index_map

    target, candidate = picked
    settings = job.settings
    at = replace(job, settings=replace(settings, budget=replace(settings.budget, target_flops=target)))
    report = build_report(at, candidate, None, clock, dict(section["timings"]), sweep=section)
    plan = candidate.outcome.plan
    plan_data = {**plan.to_dict(), "index_map": kept_index_map(job.model, job.analysis, plan)}
    shipped = restore_dynamic_dims(candidate.final, read_model_proto(settings.model))
    return report, plan_data, shipped


def sweep_markdown(document: Mapping) -> str:
    """sweep.md: what was swept, the front, the pick, and the table of points."""
    section = document["sweep"]
    model = Path(str(document["model"]["path"])).name
    points, timings = section["points"], section["timings"]
    front = ", ".join(f"{p['target']:g}" for p in points if p["pareto"]) or "none (no held-out measure)"
    shared = sum(v for k, v in timings.items() if k != "points")
    lines = [
        f"### edgeprune sweep: {model} on {section['device']}",
        "",
        f"**{len(points)} points (fractions of the MACs kept) from one capture: {shared:.1f} s shared (load, "
        f"capture, scores), {timings.get('points', 0.0):.1f} s for the points. Pareto front: {front}.**",
        "",
    ]
    pick = section.get("pick")
    if pick:
        p = points[pick["chosen"]]
        lines += [
            f"Picked {p['target']:g} of the MACs: the fastest predicted within {pick['max_drop_points']:g} points "
            f"({p['predicted_speedup']:.3f}x predicted, {p['drop_points']:.2f} points of held-out {p['measure']} "
            "lost); its model, plan and report are beside this file.",
            "",
        ]
    lines += points_markdown(section)
    return "\n".join(lines) + "\n"
