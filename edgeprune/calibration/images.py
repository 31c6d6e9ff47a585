"""Image folders: find the files, decode and preprocess one image at a time, batch by batch.

Only relative file paths and labels are held; pixels exist for one batch at a time, so a folder of
any size costs the memory of one batch. Pillow is imported only when an image is actually opened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeprune.calibration.presets import ImageSettings
from edgeprune.calibration.validate import check_shape, format_shape
from edgeprune.errors import InputError
from edgeprune.graph import ModelGraph

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class ImageFolder:
    """The files of a folder (relative paths, sorted) and, with class sub-folders, their labels."""

    root: Path
    files: tuple[str, ...]
    labels: np.ndarray | None
    classes: tuple[str, ...]


def scan_folder(root: Path) -> ImageFolder:
    """Flat folder: unlabelled. Sub-folders: one class each, label = index in sorted sub-folder order."""
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    subdirs = [p for p in entries if p.is_dir()]
    loose = [p.name for p in entries if _is_image(p)]
    if subdirs and loose:
        raise InputError(
            f"{root} holds both images ({loose[0]}, ...) and class sub-folders ({subdirs[0].name}, ...); "
            "put every image in a class sub-folder, or use a flat folder without sub-folders"
        )
    classes: tuple[str, ...] = ()
    if not subdirs:
        files, labels = tuple(loose), None
    else:
        names: list[str] = []
        label_list: list[int] = []
        for label, sub in enumerate(subdirs):
            found = sorted(p.name for p in sub.iterdir() if _is_image(p) and not p.name.startswith("."))
            if not found:
                logger.warning("class folder %s holds no images; label %d has no samples", sub, label)
            names += [f"{sub.name}/{name}" for name in found]
            label_list += [label] * len(found)
        files, classes = tuple(names), tuple(p.name for p in subdirs)
        labels = np.asarray(label_list, dtype=np.int64)
    if not files:
        where = "in it or its sub-folders" if subdirs else "in it"
        raise InputError(
            f"no images found in {root} (looked for {', '.join(IMAGE_EXTENSIONS)} files {where}); "
            "add images or pass a .npz/.npy file"
        )
    return ImageFolder(root, files, labels, classes)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def output_hw(width: int, height: int, settings: ImageSettings) -> tuple[int, int]:
    """(height, width) an image of this size has after resize and crop."""
    if settings.resize is not None:
        width, height = _shorter_side_to(width, height, settings.resize)
    if settings.crop is not None:
        return settings.crop, settings.crop
    return height, width


def _shorter_side_to(width: int, height: int, size: int) -> tuple[int, int]:
    """Scale so the shorter side is ``size``; the longer side is truncated, as torchvision does."""
    if width <= height:
        return size, max(1, int(size * height / width))
    return max(1, int(size * width / height)), size


def decode_image(path: Path, settings: ImageSettings) -> np.ndarray:
    """Decode one image into a float32 CHW (or HWC) array with ``settings`` applied.

    Order: colour, resize (bilinear, shorter side), centre crop, scale, ``(x - mean) / std``, layout.
    """
    from PIL import Image

    try:
        with Image.open(path) as opened:
            image = opened.convert("L" if settings.color == "grey" else "RGB")
            if settings.resize is not None and min(image.size) != settings.resize:
                image = image.resize(_shorter_side_to(*image.size, settings.resize), Image.Resampling.BILINEAR)
            if settings.crop is not None:
                image = _centre_crop(image, settings, path)
            pixels = np.asarray(image, dtype=np.float32)
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise InputError(f"cannot read image {path}: {_first_line(exc)}; replace or remove the file") from exc
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if settings.color == "bgr":
        pixels = pixels[:, :, ::-1]
    pixels = pixels * np.float32(settings.scale)
    if settings.mean is not None:
        pixels = np.subtract(pixels, np.asarray(settings.mean, dtype=np.float32), dtype=np.float32)
    if settings.std is not None:
        pixels = np.divide(pixels, np.asarray(settings.std, dtype=np.float32), dtype=np.float32)
    if settings.layout == "nchw":
        pixels = pixels.transpose(2, 0, 1)
    return np.ascontiguousarray(pixels, dtype=np.float32)


def _centre_crop(image, settings: ImageSettings, path: Path):
    (width, height), crop = image.size, int(settings.crop or 0)
    if crop > width or crop > height:
        resized = " after resizing" if settings.resize is not None else ""
        raise InputError(
            f"image {path} is {width}x{height}{resized}, smaller than the crop {crop}; "
            f"set --resize to at least {crop} or use a smaller --crop"
        )
    left, top = int(round((width - crop) / 2)), int(round((height - crop) / 2))
    return image.crop((left, top, left + crop, top + crop))


def check_sizes(folder: ImageFolder, settings: ImageSettings) -> None:
    """Without a crop, every image must come out the same size; read headers only, decode nothing."""
    if settings.crop is not None:
        return
    from PIL import Image

    first: tuple[str, tuple[int, int]] | None = None
    for name in folder.files:
        try:
            with Image.open(folder.root / name) as image:
                size = output_hw(*image.size, settings)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise InputError(
                f"cannot read image {folder.root / name}: {_first_line(exc)}; replace or remove the file"
            ) from exc
        if first is None:
            first = (name, size)
        elif size != first[1]:
            raise InputError(
                f"images in {folder.root} come out in mixed sizes ({first[0]} is {format_shape(first[1])}, "
                f"{name} is {format_shape(size)}); set --crop (with --resize) or a --preset so all are equal"
            )


class ImageReader:
    """Decodes the images of requested rows; holds only paths."""

    noun = "images"

    def __init__(self, folder: ImageFolder, settings: ImageSettings, input_name: str, dtype: np.dtype):
        self.folder, self.settings, self.input_name, self.dtype = folder, settings, input_name, dtype

    def read(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        decoded = [decode_image(self.folder.root / self.folder.files[int(r)], self.settings) for r in rows]
        if not decoded:
            return {self.input_name: np.zeros((0,), dtype=self.dtype)}
        try:
            stacked = np.stack(decoded)
        except ValueError as exc:  # only if an image changed on disk after check_sizes
            raise InputError(f"images in {self.folder.root} come out in mixed sizes; set --crop") from exc
        return {self.input_name: stacked.astype(self.dtype, copy=False)}

    def describe(self, row: int) -> str:
        return f"image {self.folder.files[row]} (sample {row})"


def open_image_folder(root: Path, model: ModelGraph, settings: ImageSettings) -> tuple[ImageReader, ImageFolder]:
    """Scan the folder and check the first preprocessed image against the model's single input."""
    inputs = model.input_names
    if len(inputs) != 1:
        raise InputError(
            f"the model has {len(inputs)} inputs ({', '.join(inputs)}) but an image folder feeds one; "
            "give a .npz with one array per input name"
        )
    name = inputs[0]
    dtype = np.dtype(model.dtypes.get(name, np.float32))
    if dtype.kind != "f":
        raise InputError(
            f"input '{name}' is {dtype}, but images are preprocessed to floats; give a .npz holding {dtype} arrays"
        )
    folder = scan_folder(root)
    check_sizes(folder, settings)
    first = decode_image(root / folder.files[0], settings)
    check_shape(name, (1, *first.shape), model, lambda axis: _image_hint(axis, settings, model, name))
    return ImageReader(folder, settings, name, dtype), folder


def _image_hint(axis: int, settings: ImageSettings, model: ModelGraph, name: str) -> str:
    want = model.shapes.get(name) or ()
    if axis == -1:
        return "an image folder gives 4-D batches; give a .npz for other inputs"
    if settings.layout == "nchw" and len(want) == 4 and want[3] in (1, 3) and want[1] not in (1, 3):
        return "the model looks channels-last: pass --layout nhwc"
    if settings.layout == "nhwc" and len(want) == 4 and want[1] in (1, 3) and want[3] not in (1, 3):
        return "the model looks channels-first: pass --layout nchw"
    channel_axis = 1 if settings.layout == "nchw" else 3
    if axis == channel_axis:
        return "set --color (grey gives 1 channel, rgb or bgr 3)"
    return "set --resize/--crop (or a --preset) so the images come out at the model's size"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
