"""The superization plot: H_l per layer, and Delta H_l as bars (negative steps are superization)."""

from __future__ import annotations

import io

from edgeprune.semiotic.curve import SuperizationCurve


def short_name(name: str) -> str:
    """A layer label for an axis: the node path without the module names repeated by their children
    ("/blocks/blocks.0/body/body.0/body.0.2/Relu" -> "blocks.0/body.0.2/Relu")."""
    parts = [p for p in name.strip("/").split("/") if p]
    kept = [p for p, nxt in zip(parts, parts[1:] + [""]) if not nxt.startswith(p + ".")]
    return "/".join(kept) or name


def plot_png(curve: SuperizationCurve, title: str = "") -> bytes:
    """The plot as PNG bytes (Agg backend; nothing is shown or written)."""
    from matplotlib.figure import Figure  # a Figure without pyplot uses no GUI backend and no global state

    h, d = curve.entropies, curve.deltas
    x = list(range(len(h)))
    labels = [short_name(layer.name) for layer in curve.layers]
    figure = Figure(figsize=(max(6.0, 0.45 * len(h) + 2), 6.5), dpi=100)
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.plot(x, h, marker="o", color="#1f5fa8")
    top.set_ylabel("H_l (bits)")
    top.set_title(title or f"Spatial aura entropy of the saliency maps ({curve.saliency}, {curve.images} images)")
    top.grid(alpha=0.3)
    colours = ["#2a9d4b" if v < 0 else "#c0392b" for v in d]
    bottom.bar(x[1:], d, color=colours)
    bottom.axhline(0.0, color="black", linewidth=0.8)
    bottom.set_ylabel("Delta H_l (bits)")
    bottom.set_xticks(x)
    bottom.set_xticklabels(labels, rotation=70, ha="right", fontsize=7)
    bottom.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
