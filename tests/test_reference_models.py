"""The bundled reference models and the Fashion-MNIST calibration sample they are checked on."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgeprune import reference
from edgeprune.errors import InputError

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "calibration" / "fashion-mnist"
CLASS_FOLDERS = [
    "0_t-shirt_top", "1_trouser", "2_pullover", "3_dress", "4_coat",
    "5_sandal", "6_shirt", "7_sneaker", "8_bag", "9_ankle_boot",
]
MEAN, STD = 0.2860, 0.3530
MAX_SAMPLE_DROP = 4.0  # accuracy points below the recorded test accuracy


@pytest.fixture(scope="module")
def sample() -> dict[str, np.ndarray]:
    with np.load(SAMPLE_DIR / "sample.npz") as data:
        return {key: data[key] for key in data.files}


def _session(path: Path):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def decode_grey_png(data: bytes) -> np.ndarray:
    """Decode an 8-bit greyscale, non-interlaced PNG whose rows all use filter 0 (what the sample holds)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, kind
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert (depth, colour, interlace) == (8, 0, 0)
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, width + 1)
    assert not rows[:, 0].any(), "only filter type 0 is expected"
    return rows[:, 1:]


@pytest.mark.parametrize("name", sorted(reference.REFERENCE_MODELS))
def test_reference_model_is_accurate_on_the_sample(name: str, sample: dict[str, np.ndarray]) -> None:
    path = reference.model_path(name)
    record = json.loads(reference.record_path(name).read_text())
    session = _session(path)
    (model_input,) = session.get_inputs()
    assert model_input.name == "input"
    assert model_input.shape == ["batch", 1, 28, 28]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    (logits,) = session.run(["logits"], {"input": sample["input"]})
    assert logits.shape == (500, 10)
    accuracy = 100.0 * float((logits.argmax(1) == sample["labels"]).mean())
    assert accuracy >= record["onnx_test_accuracy"] - MAX_SAMPLE_DROP
    assert abs(record["onnx_test_accuracy"] - record["torch_test_accuracy"]) <= 0.05
    assert onnx.load(str(path)).ir_version <= 10


def test_sample_has_fifty_images_in_each_class_folder(sample: dict[str, np.ndarray]) -> None:
    folders = sorted(p.name for p in SAMPLE_DIR.iterdir() if p.is_dir())
    assert folders == CLASS_FOLDERS
    assert [len(list((SAMPLE_DIR / f).glob("*.png"))) for f in folders] == [50] * 10
    assert sample["input"].shape == (500, 1, 28, 28) and sample["input"].dtype == np.float32
    assert sample["labels"].dtype == np.int64
    assert np.array_equal(sample["labels"], np.repeat(np.arange(10), 50))


@pytest.mark.parametrize("position", [0, 137, 499])
def test_png_pixels_equal_the_npz_entry(position: int, sample: dict[str, np.ndarray]) -> None:
    files = [p for folder in CLASS_FOLDERS for p in sorted((SAMPLE_DIR / folder).glob("*.png"))]
    png = files[position]
    assert png.name == f"test_{int(sample['indices'][position]):05d}.png"
    assert png.parent.name == CLASS_FOLDERS[int(sample["labels"][position])]
    pixels = decode_grey_png(png.read_bytes())
    assert pixels.shape == (28, 28)
    expected = (pixels.astype(np.float32) / np.float32(255.0) - np.float32(MEAN)) / np.float32(STD)
    np.testing.assert_allclose(sample["input"][position, 0], expected, rtol=0, atol=1e-6)


def test_unknown_reference_name_lists_the_valid_ones() -> None:
    with pytest.raises(InputError, match="unknown reference model 'resnet56'.*resnet20_fmnist, vgg_fmnist"):
        reference.model_path("resnet56")


def test_missing_reference_file_says_how_to_regenerate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(reference.REFERENCE_MODELS, "resnet20_fmnist", "not_there.onnx")
    with pytest.raises(InputError, match="benchmarks/train_reference.py --arch resnet20"):
        reference.model_path()
