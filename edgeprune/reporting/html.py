"""report.html: one self-contained page (styles inline, figures as PNG data URIs, nothing fetched), that
opens from disk; every figure has a readable table beside it."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from edgeprune.reporting import figures
from edgeprune.reporting.markdown import goal_rows, host_text, layer_cells, summary_rows
from edgeprune.reporting.text import headline, short_name

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#1d2733}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #d8dee4}
.headline{font-size:1.1em;font-weight:600;background:#eef4fb;padding:.6em .9em;border-radius:6px}
.pair{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
.pair figure{margin:0;flex:1 1 560px;min-width:0} .pair figure img{max-width:100%;height:auto;border:1px solid #e3e7eb}
.pair .side{flex:1 1 420px;overflow-x:auto;max-height:640px;overflow-y:auto}
.stack figure{margin:0} .stack figure img{max-width:100%;height:auto;border:1px solid #e3e7eb}
.stack .side{overflow-x:auto;max-height:720px;overflow-y:auto;margin-top:1em}
table{border-collapse:collapse;font-size:12px} th,td{border:1px solid #d8dee4;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f5f7;position:sticky;top:0} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.warn li{color:#8a4b00} pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:12px}
"""


def report_html(data: Mapping, extras: Mapping | None = None) -> str:
    """The page of a report read back from report.json; ``extras`` may hold an `analyze` curve
    ("superization") and a sweep ("sweep") found beside it."""
    extras = extras or {}
    model = Path(str(data["model"]["path"])).name
    device = (data.get("latency") or {}).get("device", "host")
    parts = [
        f"<h1>edgeprune: {escape(model)} on {escape(device)}</h1>",
        f'<p class="headline">{escape(headline(data))}</p>',
    ]
    for section in _sections(data, extras):
        parts.append(section)
    parts.append(_warnings(data.get("warnings") or []))
    parts.append(_footer(data))
    body = "\n".join(parts)
    title = escape(f"edgeprune report: {model} on {device}")
    return (
        f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<style>{STYLE}</style>\n</head>\n'
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def _sections(data: Mapping, extras: Mapping) -> list[str]:
    rows = data.get("layer_table") or []
    latency = data.get("latency")
    out = [
        _pair(
            "Before and after",
            figures.latency_figure(latency) if latency else None,
            "whole-model latency",
            _table(["", "before -> after"], summary_rows(data)),
        )
    ]
    groups = list(data.get("layers") or [])
    out.append(
        _pair(
            "Channels kept per group",
            figures.channels_figure(groups),
            "channels kept per group",
            _table(["group", "channels", "kept", "status"], [_group_cells(g) for g in groups]),
        )
    )
    if rows:
        head = ["layer", "op", "channels in/out", "MACs", "predicted ms", "share", "refit error", "recovery"]
        out.append(
            _pair(
                f"Per layer: MACs and predicted latency on {latency['device'] if latency else 'host'}",
                figures.layers_figure(rows, latency["device"] if latency else "host"),
                "MACs and predicted latency per layer",
                _table(head, [layer_cells(r) for r in rows]),
                wide=True,
            )
        )
    out.append(_reconstruction(data, rows))
    runs = _recovery_runs(data.get("recovery"))
    if runs:
        out.append(
            _pair(
                "Recovery",
                figures.recovery_figure(runs),
                "recovery loss and held-out curve",
                _table(
                    ["run", "measure", "before -> best", "steps", "epochs", "seconds", "stopped"],
                    [_run_cells(i, r) for i, r in enumerate(runs, 1)],
                ),
            )
        )
    if data.get("goal"):
        out.append(
            _pair(
                "Goal search",
                figures.goal_figure(data["goal"]),
                "goal candidates",
                _table(
                    ["#", "speed-up asked", "predicted", "MACs kept", "drop (points)", "met"], goal_rows(data["goal"])
                ),
            )
        )
    sweep = data.get("sweep") or (extras.get("sweep") or {}).get("sweep")
    if sweep:
        from edgeprune.reporting.sweep_text import POINT_HEAD, point_rows

        out.append(
            _pair(
                "Sweep",
                figures.sweep_figure(sweep),
                "sweep: accuracy against latency",
                _table(POINT_HEAD, point_rows(sweep)),
            )
        )
    curve = extras.get("superization")
    if curve:
        out.append(
            _pair(
                "Superization curve (edgeprune analyze)",
                figures.superization_figure(curve),
                "superization curve",
                _table(["#", "layer", "H (bits)", "delta H"], _curve_rows(curve)),
            )
        )
    return [section for section in out if section]


def _reconstruction(data: Mapping, rows: Sequence[Mapping]) -> str:
    refit = data.get("reconstruction")
    if not refit:
        return ""
    table = _table(
        ["layer", "error before", "error after", "note"],
        [
            [
                short_name(str(r["node"])),
                _num(r.get("error_before")),
                _num(r.get("error_after")),
                str(r.get("note", "")),
            ]
            for r in refit.get("layers", ())
        ],
    )
    fitted = any(r.get("refit_error_before") is not None for r in rows)
    image = figures.refit_figure(rows) if fitted else None
    title = f"Reconstruction ({refit['images']} images, {refit['samples_per_image']} samples each)"
    return _pair(title, image, "reconstruction error per layer", table)


def _pair(title: str, png: bytes | None, alt: str, table: str, wide: bool = False) -> str:
    """A figure with its table beside it (``wide``: below it, for tables with many columns)."""
    image = ""
    if png is not None:
        source = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        image = f'<figure><img src="{source}" alt="{escape(alt)}"></figure>'
    layout = "stack" if wide else "pair"
    return f'<h2>{escape(title)}</h2>\n<div class="{layout}">{image}<div class="side">{table}</div></div>'


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "\n".join("<tr>" + "".join(_cell(str(v)) for v in row) + "</tr>" for row in rows)
    return f"<table>\n<thead><tr>{header}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _cell(value: str) -> str:
    return f'<td class="num">{escape(value)}</td>' if _numeric(value) else f"<td>{escape(value)}</td>"


def _numeric(text: str) -> bool:
    """A short figure (right-aligned, kept on one line); longer text wraps, left-aligned."""
    return 0 < len(text) <= 40 and (text[0].isdigit() or text[0] in "-+.") and text != "-"


def _num(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _group_cells(group: Mapping) -> list[str]:
    status = "prunable" if group["prunable"] else "frozen: " + "; ".join(group["frozen"][:2])
    return [short_name(str(group["group"])), str(group["channels"]), str(group["kept"]), status]


def _recovery_runs(recovery: Mapping | None) -> list[Mapping]:
    if not recovery:
        return []
    return [step["recovery"] for step in recovery.get("steps", ())] or (
        [recovery["final"]] if recovery.get("final") else []
    )


def _run_cells(index: int, run: Mapping) -> list[str]:
    return [
        str(index),
        str(run["measure"]),
        f"{run['before']:.4f} -> {run['best']:.4f}",
        str(run["steps"]),
        f"{run['epochs']:g}",
        f"{run['seconds']:.1f}",
        str(run["stopped"]),
    ]


def _curve_rows(curve: Mapping) -> list[list[str]]:
    rows = []
    for i, layer in enumerate(curve["layers"]):
        delta = "" if i == 0 else f"{curve['superization'][i - 1]:+.3f}"
        rows.append([str(i), short_name(str(layer["name"])), f"{curve['entropy'][i]:.3f}", delta])
    return rows


def _warnings(warnings: Sequence[str]) -> str:
    items = "".join(f"<li>{escape(w)}</li>" for w in warnings) or "<li>none</li>"
    return f'<h2>Warnings</h2>\n<ul class="warn">{items}</ul>'


def _footer(data: Mapping) -> str:
    timings = data.get("timings") or {}
    stage_rows = [[k, f"{v:.2f}"] for k, v in timings.items()] + [["total", f"{sum(timings.values()):.2f}"]]
    environment = [[k, str(v)] for k, v in (data.get("environment") or {}).items()]
    host = (data.get("latency") or {}).get("measured_host")
    note = f"<p>Measured on this machine: {escape(host_text(host))}</p>" if host else ""
    settings = escape(json.dumps(data.get("settings"), indent=1))
    return (
        f'<h2>Timings and environment</h2>\n{note}<div class="pair"><div class="side">{_table(["stage", "seconds"], stage_rows)}</div>'
        f'<div class="side">{_table(["", "version"], environment)}</div></div>\n'
        f"<details><summary>Settings (replay: <code>edgeprune optimize --config report.json --out OTHER/</code>)"
        f"</summary><pre>{settings}</pre></details>\n"
        f"<p>edgeprune {escape(str(data['edgeprune_version']))}, report schema {escape(str(data['schema_version']))}.</p>"
    )
