"""Write the labelled Fashion-MNIST calibration sample: 50 test images per class, as PNG files and as .npz.

    python benchmarks/make_calibration_sample.py --out calibration/fashion-mnist --seed 0

The images come from the TEST split only (the reference models never trained on them), 50 per class chosen
with a seeded generator. They are written twice, in the same order:

- ``<class folder>/test_<index>.png``: 28x28 8-bit grey PNG files, one folder per class, the folder names
  prefixed with the label so that sorted order is label order (``0_t-shirt_top`` ... ``9_ankle_boot``);
  ``<index>`` is the image's position in the test split;
- ``sample.npz``: ``input`` float32 (500, 1, 28, 28) preprocessed exactly as in training, ``labels`` int64,
  ``indices`` int64 (positions in the test split).

The PNG encoder is a few lines of zlib and struct, so no imaging library is needed. Afterwards the bundled
reference models present in ``edgeprune/reference`` are evaluated on the sample.
"""

from __future__ import annotations

import argparse
import re
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fashion_mnist  # noqa: E402

PER_CLASS = 50
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def class_folder(label: int) -> str:
    """``0_t-shirt_top``, ``1_trouser``, ..., ``9_ankle_boot``."""
    slug = re.sub(r"[^a-z0-9-]+", "_", fashion_mnist.CLASS_NAMES[label].lower()).strip("_")
    return f"{label}_{slug}"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(image: np.ndarray) -> bytes:
    """An 8-bit greyscale PNG (colour type 0, no interlace) of a 2-d uint8 array; filter 0 on every row."""
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"expected a 2-d uint8 image, got {image.dtype} {image.shape}")
    height, width = image.shape
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = np.concatenate([np.zeros((height, 1), np.uint8), image], axis=1)
    return (_PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
            + _chunk(b"IEND", b""))


def choose(labels: np.ndarray, seed: int) -> np.ndarray:
    """PER_CLASS test indices per class, drawn without replacement; sorted by label, then by index."""
    rng = np.random.default_rng(seed)
    picked = [np.sort(rng.choice(np.flatnonzero(labels == c), PER_CLASS, replace=False))
              for c in range(len(fashion_mnist.CLASS_NAMES))]
    return np.concatenate(picked).astype(np.int64)


def write_sample(out: Path, images: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> None:
    for old in out.glob("*/test_*.png"):
        old.unlink()
    for index in indices:
        folder = out / class_folder(int(labels[index]))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"test_{index:05d}.png").write_bytes(encode_png(images[index]))
    np.savez_compressed(out / "sample.npz", input=fashion_mnist.normalise(images[indices]),
                        labels=labels[indices], indices=indices)


def evaluate_references(sample: Path) -> None:
    """Print each bundled reference model's accuracy on the sample next to its recorded test accuracy."""
    import json

    import onnxruntime as ort

    data = np.load(sample)
    reference = Path(__file__).resolve().parents[1] / "edgeprune" / "reference"
    for path in sorted(reference.glob("*.onnx")):
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        (logits,) = session.run(["logits"], {"input": data["input"]})
        accuracy = 100.0 * float((logits.argmax(1) == data["labels"]).mean())
        record = path.with_suffix(".json")
        recorded = json.loads(record.read_text())["onnx_test_accuracy"] if record.is_file() else float("nan")
        print(f"{path.name:<28} sample accuracy {accuracy:6.2f}%   recorded test accuracy {recorded:6.2f}%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("calibration/fashion-mnist"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=None, help="folder of the IDX gz files")
    args = parser.parse_args(argv)
    try:
        images, labels = fashion_mnist.load_split("test", args.data)
    except fashion_mnist.FashionMNISTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    indices = choose(labels, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write_sample(args.out, images, labels, indices)
    print(f"wrote {len(indices)} test images ({PER_CLASS} per class) to {args.out}")
    evaluate_references(args.out / "sample.npz")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
