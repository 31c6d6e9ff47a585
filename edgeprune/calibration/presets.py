"""Image preprocessing presets as data, and how a preset plus explicit options become final settings.

A preset is the preprocessing a model family was trained with. Getting it wrong does not crash anything;
it silently feeds the model out-of-distribution pixels and every channel score computed on them is
wrong. So the numbers live in one table, are tested, and are echoed in every report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from edgeprune.errors import InputError

Color = Literal["rgb", "bgr", "grey"]
Layout = Literal["nchw", "nhwc"]
COLORS: tuple[str, ...] = ("rgb", "bgr", "grey")
LAYOUTS: tuple[str, ...] = ("nchw", "nhwc")


@dataclass(frozen=True)
class Preset:
    """Defaults for an image folder. ``color=None`` follows the model (1 channel: grey, else rgb).

    ``mean`` and ``std`` are in the preset's colour order (RGB for the colour presets); they are reversed
    when the colour is overridden to ``bgr``.
    """

    name: str
    color: Color | None
    resize: int | None
    crop: int | None
    scale: float
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    description: str


PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        p.name: p
        for p in (
            Preset(
                "imagenet",
                "rgb",
                256,
                224,
                1 / 255,
                (0.485, 0.456, 0.406),
                (0.229, 0.224, 0.225),
                "torchvision ImageNet evaluation: shorter side 256, centre crop 224, RGB normalised",
            ),
            Preset(
                "cifar10",
                "rgb",
                32,
                32,
                1 / 255,
                (0.4914, 0.4822, 0.4465),
                (0.2470, 0.2435, 0.2616),
                "CIFAR-10: 32x32 RGB, per-channel mean/std of the training set",
            ),
            Preset(
                "fashion-mnist",
                "grey",
                28,
                28,
                1 / 255,
                (0.2860,),
                (0.3530,),
                "Fashion-MNIST: 28x28 greyscale, mean/std of the training set",
            ),
            Preset("raw", None, None, None, 1 / 255, None, None, "pixels scaled to [0, 1], nothing else"),
        )
    }
)


def get_preset(name: str) -> Preset:
    """Look a preset up by name; the error lists the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(f"unknown preprocessing preset '{name}'; choose one of: {', '.join(PRESETS)}") from None


@dataclass(frozen=True)
class ImageSettings:
    """The final preprocessing of an image folder, after the preset and explicit options are merged."""

    color: Color
    resize: int | None
    crop: int | None
    scale: float
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    layout: Layout
    preset: str | None

    @property
    def channels(self) -> int:
        return 1 if self.color == "grey" else 3

    def as_dict(self) -> dict[str, object]:
        """What was applied, in the order it is applied, for reports and replay."""
        return {
            "kind": "images",
            "preset": self.preset,
            "color": self.color,
            "resize_shorter_side": self.resize,
            "interpolation": "bilinear",
            "centre_crop": self.crop,
            "scale": self.scale,
            "mean": self.mean,
            "std": self.std,
            "layout": self.layout,
        }


def resolve_settings(
    preset: str | None,
    *,
    resize: int | None,
    crop: int | None,
    color: str | None,
    scale: float | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    layout: str,
    model_channels: int | None,
) -> ImageSettings:
    """Merge explicit options over the preset's defaults. With no preset nothing is applied by default.

    ``model_channels`` (the model's static channel count, if known) picks the colour when neither the
    preset nor the caller does, so a greyscale model gets greyscale images.
    """
    from edgeprune.calibration.validate import check_settings

    base = get_preset(preset) if preset is not None else None
    final_color = color or (base.color if base else None) or ("grey" if model_channels == 1 else "rgb")
    final_mean = tuple(mean) if mean is not None else _preset_stat(base, "mean", final_color)
    final_std = tuple(std) if std is not None else _preset_stat(base, "std", final_color)
    settings = ImageSettings(
        color=final_color,  # type: ignore[arg-type]
        resize=resize if resize is not None else (base.resize if base else None),
        crop=crop if crop is not None else (base.crop if base else None),
        scale=float(scale) if scale is not None else (base.scale if base else 1.0),
        mean=final_mean,
        std=final_std,
        layout=layout,  # type: ignore[arg-type]
        preset=base.name if base else None,
    )
    check_settings(settings)
    return settings


def _preset_stat(base: Preset | None, which: str, final_color: str) -> tuple[float, ...] | None:
    values = getattr(base, which) if base else None
    if values is not None and base is not None and base.color == "rgb" and final_color == "bgr":
        return tuple(reversed(values))
    return values
