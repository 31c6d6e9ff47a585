"""report.md: the headline, the before/after table, the per-layer table and the warnings, in GitHub
markdown (a job summary or a pull-request comment). docs/ci/optimize.sh appends it to the job summary."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from edgeprune.reporting.text import change, gain_text, headline, judged, measure_name, short_name

FOLD_AFTER = 30  # a longer per-layer table is folded (<details>) so a pull-request comment stays short


def report_markdown(data: Mapping) -> str:
    """The whole report.md of a report read back from report.json."""
    model = Path(str(data["model"]["path"])).name
    device = (data.get("latency") or {}).get("device", "host")
    lines = [f"### edgeprune: {model} on {device}", "", f"**{headline(data)}**", ""]
    lines += summary_table(data) + [""]
    lines += layers_markdown(data.get("layer_table") or [])
    if data.get("goal"):
        lines += ["", *goal_markdown(data["goal"])]
    if data.get("sweep"):
        from edgeprune.reporting.sweep_text import points_markdown

        lines += ["", f"#### Sweep ({len(data['sweep']['points'])} points, one capture)", ""]
        lines += points_markdown(data["sweep"])
    lines += ["", "#### Warnings", ""]
    lines += [f"- {text}" for text in data.get("warnings") or []] or ["none"]
    timings = data.get("timings") or {}
    lines += [
        "",
        f"Stages: {', '.join(f'{k} {v:.1f} s' for k, v in timings.items())} ({sum(timings.values()):.1f} s). "
        f"Replay: `edgeprune optimize --config report.json --out OTHER/`. edgeprune {data['edgeprune_version']}, "
        f"report schema {data['schema_version']}.",
    ]
    return "\n".join(lines) + "\n"


def summary_table(data: Mapping) -> list[str]:
    """Before -> after for the costs, the held-out judgement, the latency and the proof."""
    rows = summary_rows(data)
    return ["| | before -> after |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]


def summary_rows(data: Mapping) -> list[tuple[str, str]]:
    """The rows of `summary_table` (the CI summary's rows keep their names and formats)."""
    before, after = data["cost_before"], data["cost_after"]
    latency = data.get("latency") or {}
    proof = data["verification"]
    rows = [
        ("MACs", change(before["macs"], after["macs"])),
        ("parameters", change(before["params"], after["params"])),
        ("size (weight bytes)", change(before["weight_bytes"], after["weight_bytes"])),
        (
            "peak activation memory (bytes per image)",
            change(before["peak_activation_bytes"], after["peak_activation_bytes"]),
        ),
        (measure_name(data), judged(data)),
    ]
    if latency:
        rows.append(
            (
                f"predicted latency on {latency['device']}",
                change(latency["predicted_ms_before"], latency["predicted_ms_after"], ".3f", " ms"),
            )
        )
        split = gain_text(latency)
        if split:
            rows.append(("predicted gain: removed blocks and channels", split))
        host = latency.get("measured_host")
        if host:
            rows.append(("measured latency on this machine", host_text(host)))
    rows.append(("proof", f"passed: {proof['passed']}, max relative difference {proof['max_rel']:.2g}"))
    return rows


def host_text(host: Mapping) -> str:
    original, pruned = host["original"], host["pruned"]
    return (
        f"{original['median_ms']:.3f} ms -> {pruned['median_ms']:.3f} ms ({host['speedup']:.2f}x +-{host['noise']:.1%}; "
        f"p10-p90 {pruned['p10_ms']:.3f}-{pruned['p90_ms']:.3f} ms; {host['provider']}, {host['rounds']} interleaved rounds)"
    )


def layers_markdown(rows: list) -> list[str]:
    """The per-layer table: channels, MACs, predicted latency, share, refit error, what recovery moved."""
    if not rows:
        return ["No layer the latency model prices."]
    head = [
        "| layer | op | channels in/out | MACs | predicted ms | share | refit error | recovery |",
        "|---|---|---|---|---|---|---|---|",
    ]
    body = [layer_cells(row) for row in rows]
    table = head + ["| " + " | ".join(cells) + " |" for cells in body]
    title = f"Per-layer table ({len(rows)} layers)"
    if len(rows) <= FOLD_AFTER:
        return [f"#### {title}", "", *table]
    return ["<details>", f"<summary>{title}</summary>", "", *table, "", "</details>"]


def layer_cells(row: Mapping) -> list[str]:
    """One layer's cells, shared by report.md and report.html."""
    (cin, cout), (kin, kout) = row["channels_before"], row["channels_after"]
    refit = "-"
    if row.get("refit_error_before") is not None and row.get("refit_error_after") is not None:
        refit = f"{row['refit_error_before']:.3f} -> {row['refit_error_after']:.3f}"
        refit += "" if row.get("refit_applied") else " (not applied)"
    recovery = "-" if row.get("recovery_change") is None else f"{row['recovery_change']:.1%} moved"
    return [
        short_name(str(row["node"])),
        str(row["op"]),
        f"{cin}/{cout} -> {kin}/{kout}",
        change(row["macs_before"], row["macs_after"]),
        f"{row['predicted_ms_before']:.4f} -> {row['predicted_ms_after']:.4f}",
        f"{row['share']:.1%} {'measured' if row['measured'] else 'roofline'}",
        refit,
        recovery,
    ]


def goal_markdown(goal: Mapping) -> list[str]:
    """The goal search's candidates, the chosen one in bold."""
    lines = [
        f"#### Goal: the fastest plan within {goal['max_drop_points']:g} points of held-out {goal['measure']}",
        "",
        "| # | speed-up asked | predicted | MACs kept | drop (points) | met |",
        "|---|---|---|---|---|---|",
    ]
    for index, cells in enumerate(goal_rows(goal)):
        if index == goal["chosen"]:
            cells[0] = f"**{cells[0]}** (chosen)"
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def goal_rows(goal: Mapping) -> list[list[str]]:
    return [
        [
            str(index),
            f"{c['target_speedup']:.3f}x",
            f"{c['predicted_speedup']:.3f}x",
            f"{c['macs_fraction']:.1%}",
            f"{c['drop_points']:.2f}",
            "yes" if c["met"] else "no",
        ]
        for index, c in enumerate(goal["candidates"])
    ]
