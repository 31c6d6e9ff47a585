"""Text for the latency part of a report: predicted on the target device, measured on this machine."""

from __future__ import annotations

from collections.abc import Mapping

from edgeprune.reporting.text import gain_text


def latency_lines(section: Mapping, limit: int = 40, layers: bool = True) -> list[str]:
    """The predicted and measured totals; with ``layers`` (``-v``) also the device's description, up to
    ``limit`` per-layer rows and the notes."""
    device = (
        f"on {section['device']} ({section['provider']}, {section['precision']}, its channel alignment "
        f"{section['alignment']}; {section['tables']}, whole-model factor {section['factor']:.2f})"
    )
    lines = [f"  latency   {device if layers else 'on ' + section['device']}"]
    speedup = section.get("predicted_speedup")
    lines.append(
        f"    predicted {section['predicted_ms_before']:.3f} -> {section['predicted_ms_after']:.3f} ms "
        f"({speedup:.2f}x) for {section['mac_reduction']:.1%} fewer MACs"
        if speedup
        else ""
    )
    split = gain_text(section)
    if split:
        lines.append(f"    gain      {split}")
    host = section.get("measured_host")
    if host:
        lines.append(
            f"    measured  {host['original']['median_ms']:.3f} -> {host['pruned']['median_ms']:.3f} ms "
            f"({host['speedup']:.2f}x +-{host['noise']:.1%}) on this machine ({host['provider']}, "
            f"{host['rounds']} interleaved rounds)"
        )
    rows = section.get("layers", ()) if layers else ()
    if rows:
        width = min(max(len(r["node"]) for r in rows), 44)
        lines.append(f"    {'layer':<{width}}  {'MACs cut':>8}  {'predicted ms':>17}")
        for row in list(rows)[:limit]:
            lines.append(
                f"    {row['node'][-width:]:<{width}}  {row['mac_reduction']:>8.1%}  "
                f"{row['predicted_ms_before']:>7.3f} -> {row['predicted_ms_after']:<7.3f} ({row['source']})"
            )
        if len(rows) > limit:
            lines.append(f"    ... {len(rows) - limit} more layers in report.json")
    lines += [f"  note      {text}" for text in section.get("notes", ()) if layers]
    lines += [f"  warning   {text}" for text in section.get("warnings", ())]
    return [line for line in lines if line]
