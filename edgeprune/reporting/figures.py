"""The report's figures, as PNG bytes: matplotlib's Agg canvas on a bare `Figure` (no pyplot, no GUI, no
global state), imported only when a figure is drawn."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from edgeprune.reporting.text import short_name

BEFORE, AFTER, GOOD, BAD = "#9aa5b1", "#1f5fa8", "#2a9d4b", "#c0392b"


def _figure(width: float, height: float, rows: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, 1, squeeze=False)[:, 0]
    return figure, list(axes)


def _png(figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})  # no version stamp: same data, same bytes
    return buffer.getvalue()


def _width(count: int) -> float:
    return min(max(6.5, 0.32 * count + 2.5), 16.0)


def _paired_bars(axis, labels: Sequence[str], before: Sequence[float], after: Sequence[float], unit: str) -> None:
    x = range(len(labels))
    axis.bar([i - 0.2 for i in x], before, width=0.4, color=BEFORE, label="before")
    axis.bar([i + 0.2 for i in x], after, width=0.4, color=AFTER, label="after")
    axis.set_ylabel(unit)
    axis.set_xticks(list(x))
    axis.set_xticklabels(labels, rotation=70, ha="right", fontsize=7)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8)


def channels_figure(groups: Sequence[Mapping]) -> bytes:
    """Channels kept per group, against the group's channels (frozen groups hatched)."""
    figure, (axis,) = _figure(_width(len(groups)), 4.2)
    labels = [short_name(str(g["group"])) for g in groups]
    x = list(range(len(groups)))
    axis.bar(x, [g["channels"] for g in groups], color=BEFORE, label="channels")
    kept = axis.bar(x, [g["kept"] for g in groups], width=0.5, color=AFTER, label="kept")
    for bar, group in zip(kept, groups):
        if not group["prunable"]:
            bar.set_hatch("//")
            bar.set_facecolor("#d8dee4")
    axis.set_xticks(x)
    axis.set_xticklabels(labels, rotation=70, ha="right", fontsize=7)
    axis.set_ylabel("channels")
    axis.set_title("Channels kept per group (hatched: frozen)")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8)
    return _png(figure)


def layers_figure(rows: Sequence[Mapping], device: str) -> bytes:
    """MACs and predicted latency on the device per layer, before and after."""
    figure, (top, bottom) = _figure(_width(len(rows)), 7.5, rows=2)
    labels = [short_name(str(r["node"])) for r in rows]
    _paired_bars(top, labels, [r["macs_before"] / 1e6 for r in rows], [r["macs_after"] / 1e6 for r in rows], "MMACs")
    top.set_title("MACs per layer")
    before = [r["predicted_ms_before"] for r in rows]
    _paired_bars(bottom, labels, before, [r["predicted_ms_after"] for r in rows], "ms")
    bottom.set_title(f"Predicted latency per layer on {device}")
    return _png(figure)


def latency_figure(latency: Mapping) -> bytes:
    """The whole model before and after: predicted on the device, measured on this machine (p10-p90 bars)."""
    figure, (axis,) = _figure(6.5, 3.8)
    host = latency.get("measured_host")
    names = [f"predicted on {latency['device']}"]
    before, after = [latency["predicted_ms_before"]], [latency["predicted_ms_after"]]
    spans: list[tuple[float, float]] = [(0.0, 0.0)]
    if host:
        names.append(f"measured here ({host['provider'].replace('ExecutionProvider', '')})")
        before.append(host["original"]["median_ms"])
        after.append(host["pruned"]["median_ms"])
        spans.append(
            (
                host["pruned"]["median_ms"] - host["pruned"]["p10_ms"],
                host["pruned"]["p90_ms"] - host["pruned"]["median_ms"],
            )
        )
    y = list(range(len(names)))
    axis.barh([i + 0.2 for i in y], before, height=0.4, color=BEFORE, label="before")
    errors = [[max(s[0], 0.0) for s in spans], [max(s[1], 0.0) for s in spans]]
    axis.barh([i - 0.2 for i in y], after, height=0.4, color=AFTER, label="after", xerr=errors, capsize=3)
    axis.set_yticks(y)
    axis.set_yticklabels(names, fontsize=8)
    axis.set_xlabel("ms per run")
    for i, (b, a) in enumerate(zip(before, after)):
        if a:
            axis.annotate(f"{b / a:.2f}x faster", (a, i - 0.2), xytext=(6, -3), textcoords="offset points", fontsize=8)
    axis.set_title("Whole-model latency, before and after (bars: p10-p90 of the runs)", fontsize=9)
    axis.margins(x=0.18)
    axis.grid(axis="x", alpha=0.3)
    axis.legend(fontsize=8)
    return _png(figure)


def refit_figure(rows: Sequence[Mapping]) -> bytes:
    """The least-squares refit per layer: the relative output error before and after refitting."""
    fitted = [r for r in rows if r.get("refit_error_before") is not None and r.get("refit_error_after") is not None]
    figure, (axis,) = _figure(_width(len(fitted)), 4.2)
    labels = [short_name(str(r["node"])) for r in fitted]
    before = [r["refit_error_before"] for r in fitted]
    _paired_bars(axis, labels, before, [r["refit_error_after"] for r in fitted], "relative output error")
    axis.set_title("Output error of each refitted layer, before and after the least-squares refit", fontsize=10)
    return _png(figure)


def recovery_figure(runs: Sequence[Mapping]) -> bytes:
    """Distillation: the training loss and the held-out measure against optimiser steps (cuts in a row)."""
    figure, (axis,) = _figure(7.5, 4.0)
    held = axis.twinx()
    offset = 0
    for index, run in enumerate(runs):
        loss = [(offset + s, v) for s, v in run.get("loss_curve", ()) if v is not None]
        judged = [(offset + j["step"], j["measure"]) for j in run.get("judgements", ()) if j["measure"] is not None]
        if loss:
            axis.plot(*zip(*loss), color=BEFORE, label="training loss" if index == 0 else None)
        if judged:
            held.plot(
                *zip(*judged), color=AFTER, marker="o", label=f"held-out {run['measure']}" if index == 0 else None
            )
        if index:
            axis.axvline(offset, color="black", linewidth=0.6, linestyle=":")
        offset += int(run.get("steps", 0))
    axis.set_xlabel("optimiser step")
    axis.set_ylabel("loss")
    held.set_ylabel("held-out measure")
    axis.set_title("Recovery by distillation" + (f" ({len(runs)} cuts)" if len(runs) > 1 else ""))
    axis.grid(alpha=0.3)
    handles = axis.get_legend_handles_labels()[0] + held.get_legend_handles_labels()[0]
    if handles:
        axis.legend(handles=handles, loc="best", fontsize=8)  # one legend for both axes, inside the plot
    return _png(figure)


def goal_figure(goal: Mapping) -> bytes:
    """The goal search's candidates: points lost against the predicted speed-up, the limit and the choice."""
    figure, (axis,) = _figure(6.5, 4.0)
    for index, c in enumerate(goal["candidates"]):
        colour = GOOD if c["met"] else BAD
        axis.scatter(
            c["predicted_speedup"],
            c["drop_points"],
            color=colour,
            s=140 if index == goal["chosen"] else 40,
            marker="*" if index == goal["chosen"] else "o",
            zorder=3,
        )
        axis.annotate(
            str(index),
            (c["predicted_speedup"], c["drop_points"]),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    axis.axhline(goal["max_drop_points"], color="black", linewidth=0.8, linestyle="--", label="allowed drop")
    axis.set_xlabel("predicted speed-up on the device (x)")
    axis.set_ylabel(f"held-out {goal['measure']} lost (points)")
    axis.set_title("Goal search: candidates in the order tried (star: chosen)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _png(figure)


def superization_figure(curve: Mapping) -> bytes:
    """`edgeprune analyze`'s curve: H_l per layer and Delta H_l (negative: superization)."""
    figure, (top, bottom) = _figure(_width(len(curve["entropy"])), 6.0, rows=2)
    h, d = curve["entropy"], curve["superization"]
    x = list(range(len(h)))
    top.plot(x, h, marker="o", color=AFTER)
    top.set_ylabel("H_l (bits)")
    top.set_title(f"Superization curve ({curve.get('saliency', '?')} saliency, {curve.get('images', '?')} images)")
    top.grid(alpha=0.3)
    bottom.bar(x[1:], d, color=[GOOD if v < 0 else BAD for v in d])
    bottom.axhline(0.0, color="black", linewidth=0.8)
    bottom.set_ylabel("Delta H_l (bits)")
    bottom.set_xticks(x)
    bottom.set_xticklabels(
        [short_name(str(layer["name"])) for layer in curve["layers"]], rotation=70, ha="right", fontsize=7
    )
    bottom.grid(alpha=0.3)
    return _png(figure)


def sweep_figure(sweep: Mapping) -> bytes:
    """Held-out measure against predicted latency for every sweep point, the Pareto front joined; beside
    it, the speed-up measured here against the one predicted on the device."""
    measured = [p for p in sweep["points"] if p.get("measured_speedup") and p.get("predicted_speedup")]
    figure, axes = _figure(7.0, 8.2 if measured else 4.4, rows=2 if measured else 1)
    _sweep_front(axes[0], sweep)
    if measured:
        axis = axes[1]
        predicted = [p["predicted_speedup"] for p in measured]
        here = [p["measured_speedup"] for p in measured]
        spread = [p["measured_speedup"] * (p.get("noise") or 0.0) for p in measured]
        axis.errorbar(predicted, here, yerr=spread, fmt="o", color=AFTER, capsize=3)
        for p in measured:
            axis.annotate(
                f"{p['target']:g}",
                (p["predicted_speedup"], p["measured_speedup"]),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
            )
        low, high = min(predicted + here + [1.0]), max(predicted + here)
        axis.plot([low, high], [low, high], color="black", linewidth=0.7, linestyle="--", label="measured = predicted")
        axis.set_xlabel(f"speed-up predicted on {sweep['device']} (x)")
        axis.set_ylabel("speed-up measured on this machine (x)")
        axis.set_title("Speed-up measured on this machine against predicted on the device", fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return _png(figure)


def _sweep_front(axis, sweep: Mapping) -> None:
    points = [p for p in sweep["points"] if p.get("value") is not None]
    front = sorted((p for p in points if p["pareto"]), key=lambda p: p["predicted_ms"])
    axis.plot([p["predicted_ms"] for p in front], [100 * p["value"] for p in front], color=AFTER, label="Pareto front")
    chosen = (sweep.get("pick") or {}).get("chosen")
    for index, p in enumerate(sweep["points"]):
        if p.get("value") is None:
            continue
        picked = index == chosen
        axis.scatter(
            p["predicted_ms"],
            100 * p["value"],
            color=GOOD if p["pareto"] else BEFORE,
            zorder=3,
            s=150 if picked else 40,
            marker="*" if picked else "o",
        )
        axis.annotate(
            f"{p['target']:g}",
            (p["predicted_ms"], 100 * p["value"]),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    axis.set_xlabel(f"predicted latency on {sweep['device']} (ms)")
    axis.set_ylabel(f"held-out {sweep.get('measure') or 'measure'} (%)")
    axis.set_title("Held-out measure against predicted latency (labels: MACs kept; star: picked)", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
