"""The sweep's points as table rows, for sweep.md, report.md and report.html."""

from __future__ import annotations

from collections.abc import Mapping

POINT_HEAD = [
    "MACs kept (target)",
    "MACs kept",
    "params kept",
    "predicted ms",
    "predicted speed-up",
    "measured speed-up here",
    "held-out measure",
    "drop (points)",
    "Pareto",
]


def point_rows(sweep: Mapping) -> list[list[str]]:
    """One row per point, in the order of the targets; the picked point marked."""
    chosen = (sweep.get("pick") or {}).get("chosen")
    rows = []
    for index, p in enumerate(sweep["points"]):
        measured = "-" if p["measured_speedup"] is None else f"{p['measured_speedup']:.2f}x +-{p['noise']:.0%}"
        value = "-" if p["value"] is None else f"{p['value']:.2%} {p['measure']}"
        pareto = "yes" if p["pareto"] else ""
        rows.append(
            [
                f"{p['target']:g}" + (" (picked)" if index == chosen else ""),
                f"{p['macs_fraction']:.1%}",
                f"{p['params_fraction']:.1%}",
                f"{p['predicted_ms']:.4f}",
                "-" if p["predicted_speedup"] is None else f"{p['predicted_speedup']:.3f}x",
                measured,
                value,
                "-" if p["drop_points"] is None else f"{p['drop_points']:.2f}",
                pareto,
            ]
        )
    return rows


def points_markdown(sweep: Mapping) -> list[str]:
    head = ["| " + " | ".join(POINT_HEAD) + " |", "|" + "---|" * len(POINT_HEAD)]
    return head + ["| " + " | ".join(cells) + " |" for cells in point_rows(sweep)]
