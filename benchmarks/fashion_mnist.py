"""Read the real Fashion-MNIST data set from its IDX gz files (numpy only).

The files come from the Debian package ``dataset-fashion-mnist`` (MIT license), installed offline on the
build machines. IDX is a tiny format: a big-endian magic number (0x00000803 for 3-d uint8 images,
0x00000801 for 1-d uint8 labels), the dimension sizes as big-endian uint32, then the raw bytes. Both are
checked, so a truncated or swapped file fails with a clear message instead of silently wrong data.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = "run `apt-get update && apt-get install -y dataset-fashion-mnist`"

# Label order, as published with the data set.
CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# Preprocessing used for training and for the bundled calibration sample: x / 255, then (x - MEAN) / STD.
MEAN = 0.2860
STD = 0.3530

_IMAGES_MAGIC = 0x00000803
_LABELS_MAGIC = 0x00000801
_SPLITS = {"train": ("train", 60_000), "test": ("t10k", 10_000)}


class FashionMNISTError(RuntimeError):
    """The data set is missing or a file is not what it should be."""


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder with the IDX gz files: ``root``, else $FASHION_MNIST_DIR, else the Debian package's."""
    chosen = Path(root or os.environ.get("FASHION_MNIST_DIR") or DEFAULT_ROOT)
    if not chosen.is_dir():
        raise FashionMNISTError(f"Fashion-MNIST not found in {chosen}: {INSTALL_HINT}")
    return chosen


def _read_idx(path: Path, magic: int, shape_tail: tuple[int, ...], count: int) -> np.ndarray:
    if not path.is_file():
        raise FashionMNISTError(f"Fashion-MNIST file {path} is missing: {INSTALL_HINT}")
    data = gzip.decompress(path.read_bytes())
    ndim = 1 + len(shape_tail)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise FashionMNISTError(f"{path} is truncated: {len(data)} bytes, no IDX header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise FashionMNISTError(f"{path}: IDX magic number {found:#010x}, expected {magic:#010x}")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if dims != (count, *shape_tail):
        raise FashionMNISTError(f"{path}: IDX dimensions {dims}, expected {(count, *shape_tail)}")
    body = np.frombuffer(data, dtype=np.uint8, offset=header)
    if body.size != int(np.prod(dims)):
        raise FashionMNISTError(f"{path}: {body.size} data bytes, expected {int(np.prod(dims))}")
    return body.reshape(dims)


def load_split(split: str, root: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of ``split`` ("train": 60,000, "test": 10,000)."""
    if split not in _SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    prefix, count = _SPLITS[split]
    folder = data_root(root)
    images = _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", _IMAGES_MAGIC, (28, 28), count)
    labels = _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", _LABELS_MAGIC, (), count)
    if labels.max() >= len(CLASS_NAMES):
        raise FashionMNISTError(f"{split} labels go up to {labels.max()}, expected 0..{len(CLASS_NAMES) - 1}")
    return images.copy(), labels.astype(np.int64)


def normalise(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) scaled by 1/255 and standardised with MEAN and STD."""
    scaled = images.astype(np.float32)[:, None] / np.float32(255.0)
    return (scaled - np.float32(MEAN)) / np.float32(STD)
