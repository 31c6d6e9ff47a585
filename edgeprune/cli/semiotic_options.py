"""The options of the semiotic strategy (`--strategy semiotic`); the command receives one ``semiotic`` settings object."""

from __future__ import annotations

import functools

import click


def semiotic_options(command):
    """--semiotic-images, --semiotic-chunk, --semiotic-per-mac and --semiotic-lazy/--semiotic-exact."""
    options = [
        click.option("--semiotic-images", type=int, default=64, show_default=True,
                     help="semiotic: calibration images every candidate's superization curve is measured on."),
        click.option("--semiotic-chunk", type=float, default=0.125, show_default=True,
                     help="semiotic: share of a group's channels one greedy step removes (at least the alignment)."),
        click.option("--semiotic-per-mac", is_flag=True,
                     help="semiotic: rank candidates by curve change per MAC removed, not by curve change alone."),
        click.option("--semiotic-lazy/--semiotic-exact", default=False, show_default=True,
                     help="semiotic: re-measure only the most promising candidates each step (a heuristic, about 5x "
                     "faster), or every candidate at every step."),
    ]
    for option in reversed(options):
        command = option(command)

    @functools.wraps(command)
    def wrapper(*args, semiotic_images, semiotic_chunk, semiotic_per_mac, semiotic_lazy, **kwargs):
        from edgeprune.semiotic.settings import SemioticSettings

        kwargs["semiotic"] = SemioticSettings(images=semiotic_images, chunk=semiotic_chunk, per_mac=semiotic_per_mac,
                                              lazy=semiotic_lazy)
        return command(*args, **kwargs)

    return wrapper
