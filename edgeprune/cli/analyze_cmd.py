"""`analyze`: the superization curve of a model (per-layer saliency-map entropy), as JSON and a plot."""

from __future__ import annotations

from pathlib import Path

import click

from edgeprune.cli.options import calibration_options, config_option, run_options


@click.command("analyze")
@click.argument("model", type=click.Path(path_type=Path))
@config_option
@calibration_options
@click.option(
    "--saliency",
    type=click.Choice(["mean", "aura-mi"]),
    default="mean",
    show_default=True,
    help="Gradient-free saliency map: the channel mean, or weighted by each channel's aura MI.",
)
@click.option(
    "--torch-model",
    type=click.Path(path_type=Path),
    help="TorchScript file of the same model: use Grad-CAM maps of its convs (needs torch).",
)
@click.option("--levels", type=int, help="Grey levels for the entropy (default: 8, fewer for maps of 4x4 or less).")
@click.option(
    "--resolution",
    type=int,
    help="Average-pool every saliency map to at most this many sites a side first, so layers of "
    "different sizes are compared at one scale (default: each at its own size).",
)
@run_options
@click.option("--plot/--no-plot", default=True, show_default=True, help="Also write superization.png.")
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Folder for superization.json and superization.png."
)
def analyze_command(
    model, calib, preprocessing, limit, saliency, torch_model, levels, resolution, batch_size, seed, provider, plot, out
) -> None:
    """Measure MODEL's superization curve: the spatial aura entropy H_l of each layer's saliency map, and
    Delta H_l = H_l - H_(l-1) (negative where the layer aggregates signs into supersigns)."""
    from edgeprune.semiotic.analyze import AnalyzeConfig, analyze_superization

    config = AnalyzeConfig(
        model=model,
        calib=calib,
        out=out,
        saliency=saliency,
        torch_model=torch_model,
        levels=levels,
        resolution=resolution,
        limit=limit,
        batch_size=batch_size,
        seed=seed,
        provider=provider,
        plot=plot,
        preprocessing=preprocessing,
    )
    result = analyze_superization(config)
    click.echo(curve_text(result.curve))
    click.echo("wrote " + ", ".join(str(p) for p in result.files.values()))


def curve_text(curve) -> str:
    """One line per layer: H_l, Delta H_l and the share of dead maps."""
    from edgeprune.semiotic.plot import short_name

    lines = [
        f"superization curve ({curve.saliency} saliency, {curve.images} images)",
        f"{'#':>3}  {'layer':<40} {'size':>9} {'H (bits)':>9} {'dH':>8} {'dead':>6}",
    ]
    previous = None
    for i, layer in enumerate(curve.layers):
        delta = "" if previous is None else f"{layer.entropy - previous:+.3f}"
        size = f"{layer.channels}x{layer.height}x{layer.width}"
        lines.append(
            f"{i:>3}  {short_name(layer.name)[:40]:<40} {size:>9} {layer.entropy:>9.3f} {delta:>8} "
            f"{layer.dead_fraction:>6.1%}"
        )
        previous = layer.entropy
    h = curve.entropies
    falls = int((curve.deltas < 0).sum())
    lines.append(
        f"H from {h[0]:.3f} to {h[-1]:.3f} bits ({h[-1] - h[0]:+.3f}); entropy falls at {falls} of {len(h) - 1} steps"
    )
    return "\n".join(lines)
