"""Calibration data: presets, image folders, arrays, views (batches/split/take), streaming and every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper
from PIL import Image

import edgeprune.calibration.images as images_module
from edgeprune.calibration import PRESETS, get_preset, load_calibration
from edgeprune.errors import InputError
from edgeprune.graph import normalize_proto

REPO_SAMPLE = Path(__file__).resolve().parents[1] / "calibration" / "fashion-mnist"


def model_of(shapes: dict, elem_type: int = TensorProto.FLOAT):
    """A Relu per input, so every input survives normalisation with its declared shape."""
    inputs = [helper.make_tensor_value_info(n, elem_type, list(s)) for n, s in shapes.items()]
    outputs = [helper.make_tensor_value_info(f"{n}_out", elem_type, None) for n in shapes]
    nodes = [helper.make_node("Relu", [n], [f"{n}_out"]) for n in shapes]
    graph = helper.make_graph(nodes, "calib", inputs, outputs)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 10
    return normalize_proto(proto)


RGB = model_of({"input": ["N", 3, "H", "W"]})
NHWC = model_of({"input": ["N", "H", "W", 3]})
GREY28 = model_of({"input": ["N", 1, 28, 28]})
FLAT = model_of({"input": ["N", 4]})
PAIR = model_of({"a": ["N", 2], "b": ["N", 3]})


def png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)
    return path


def noise(h: int, w: int, seed: int, channels: int = 3) -> np.ndarray:
    shape = (h, w, channels) if channels > 1 else (h, w)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def pair_npz(path: Path, n: int = 40, labels=None) -> Path:
    rng = np.random.default_rng(0)
    extra = {} if labels is None else {"labels": labels}
    a, b = rng.normal(size=(n, 2)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32)
    return npz(path, a=a, b=b, **extra)


def test_preset_numbers():
    imagenet, cifar, fmnist, raw = (get_preset(n) for n in ("imagenet", "cifar10", "fashion-mnist", "raw"))
    assert (imagenet.color, imagenet.resize, imagenet.crop, imagenet.scale) == ("rgb", 256, 224, 1 / 255)
    assert imagenet.mean == (0.485, 0.456, 0.406) and imagenet.std == (0.229, 0.224, 0.225)
    assert (cifar.color, cifar.resize, cifar.crop, cifar.scale) == ("rgb", 32, 32, 1 / 255)
    assert cifar.mean == (0.4914, 0.4822, 0.4465) and cifar.std == (0.2470, 0.2435, 0.2616)
    assert (fmnist.color, fmnist.resize, fmnist.crop, fmnist.scale) == ("grey", 28, 28, 1 / 255)
    assert fmnist.mean == (0.2860,) and fmnist.std == (0.3530,)
    assert (raw.resize, raw.crop, raw.scale, raw.mean, raw.std) == (None, None, 1 / 255, None, None)
    assert sorted(PRESETS) == ["cifar10", "fashion-mnist", "imagenet", "raw"]


def test_class_folders_give_labels_in_sorted_order(tmp_path):
    for cls, n in (("dog", 2), ("cat", 3), ("owl", 1)):
        for i in range(n):
            png(tmp_path / cls / f"{i}.png", noise(8, 8, i))
    (tmp_path / "notes.txt").write_text("ignored")
    cal = load_calibration(tmp_path, RGB)
    assert cal.class_names == ("cat", "dog", "owl") and cal.count == 6
    assert cal.labels.tolist() == [0, 0, 0, 1, 1, 2] and cal.labels.dtype == np.int64
    assert [b.labels.tolist() for b in cal.batches(4)] == [[0, 0, 0, 1], [1, 2]]


def test_flat_folder_has_no_labels(tmp_path):
    for i in range(3):
        png(tmp_path / f"{i}.png", noise(8, 8, i))
    png(tmp_path / "x.jpeg", noise(8, 8, 9))  # JPEG is read too
    cal = load_calibration(tmp_path, RGB, preset="raw")
    assert cal.labels is None and cal.count == 4 and cal.class_names == ()
    assert all(b.labels is None for b in cal.batches(2))


def test_preprocessing_matches_hand_computation(tmp_path):
    pixels = noise(4, 6, seed=1)  # height 4, width 6
    png(tmp_path / "img.png", pixels)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    cal = load_calibration(tmp_path, RGB, crop=4, scale=1 / 255, mean=mean, std=std)
    (x,) = [b.inputs["input"] for b in cal.batches(1)]
    crop = pixels[:, 1:5].astype(np.float32)  # centre crop of width 6 -> 4 starts at column 1
    expected = (crop * np.float32(1 / 255) - np.float32(mean)) / np.float32(std)
    np.testing.assert_allclose(x[0], expected.transpose(2, 0, 1), rtol=1e-6)
    assert x.dtype == np.float32 and cal.preprocessing["mean"] == mean
    bgr = load_calibration(tmp_path, NHWC, preset="imagenet", resize=4, crop=4, color="bgr", layout="nhwc")
    (y,) = [b.inputs["input"] for b in bgr.batches(1)]
    want = (crop[:, :, ::-1] / np.float32(255) - np.float32((0.406, 0.456, 0.485))) / np.float32((0.225, 0.224, 0.229))
    np.testing.assert_allclose(y[0], want, rtol=1e-5)  # preset mean/std follow the BGR order


def test_grey_images_and_colour_follows_model(tmp_path):
    pixels = noise(28, 28, seed=2, channels=1)
    png(tmp_path / "g.png", pixels)
    cal = load_calibration(tmp_path, GREY28)  # no preset: colour from the model's 1 channel, nothing else applied
    (x,) = [b.inputs["input"] for b in cal.batches(1)]
    np.testing.assert_array_equal(x[0, 0], pixels.astype(np.float32))
    fm = load_calibration(tmp_path, GREY28, preset="fashion-mnist")
    (y,) = [b.inputs["input"] for b in fm.batches(1)]
    np.testing.assert_allclose(y[0, 0], (pixels / np.float32(255) - np.float32(0.2860)) / np.float32(0.3530), rtol=1e-5)


def test_resize_and_crop_shapes(tmp_path):
    png(tmp_path / "wide.png", noise(30, 40, seed=3))  # 40 wide, 30 high
    def shape(model=RGB, **options):
        return next(load_calibration(tmp_path, model, **options).batches(1)).inputs["input"].shape

    assert shape(resize=32, crop=28) == (1, 3, 28, 28)
    assert shape(resize=15) == (1, 3, 15, 20)
    assert shape(NHWC, resize=32, crop=28, layout="nhwc") == (1, 28, 28, 3)
    assert shape(preset="imagenet") == (1, 3, 224, 224)


def test_batches_cover_every_sample_once_in_order(tmp_path):
    cal = load_calibration(pair_npz(tmp_path / "d.npz", n=10), PAIR)
    runs = [list(cal.batches(4)) for _ in range(2)]
    assert [len(b) for b in runs[0]] == [4, 4, 2]
    assert np.concatenate([b.indices for b in runs[0]]).tolist() == list(range(10))
    stored = np.load(tmp_path / "d.npz")
    for b0, b1 in zip(*runs):
        np.testing.assert_array_equal(b0.inputs["a"], stored["a"][b0.indices])
        np.testing.assert_array_equal(b0.inputs["b"], b1.inputs["b"])
    picked = list(cal.batches(2, indices=[7, 1, 4]))
    assert [b.indices.tolist() for b in picked] == [[7, 1], [4]]


def test_split_is_disjoint_deterministic_and_stratified(tmp_path):
    labels = np.repeat([0, 1, 2], [20, 10, 10])
    cal = load_calibration(pair_npz(tmp_path / "d.npz", labels=labels), PAIR)
    rest, held = cal.split(0.25, seed=1)
    rows = lambda s: set(s._rows.tolist())  # noqa: E731
    assert rows(rest).isdisjoint(rows(held)) and rows(rest) | rows(held) == set(range(40))
    assert held.count == 10 and np.bincount(held.labels).tolist() == [5, 3, 2]  # largest remainder, ties by class
    again_rest, again_held = cal.split(0.25, seed=1)
    assert rows(again_held) == rows(held) and rows(again_rest) == rows(rest)
    assert rows(cal.split(0.25, seed=2)[1]) != rows(held)
    assert cal.split(4, seed=0)[1].count == 4
    for bad in (0, 40, 1.0, 0.0):
        with pytest.raises(InputError, match="held-out"):
            cal.split(bad)


def test_take_is_deterministic(tmp_path):
    cal = load_calibration(pair_npz(tmp_path / "d.npz", n=30), PAIR, seed=5)
    first, second = cal.take(7, seed=3), cal.take(7, seed=3)
    assert first.count == 7 and first._rows.tolist() == second._rows.tolist()
    assert cal.take(100) is cal
    limited = load_calibration(tmp_path / "d.npz", PAIR, limit=7, seed=3)
    assert limited._rows.tolist() == first._rows.tolist() and limited.preprocessing["limit"] == 7


def test_npz_and_mmapped_npy_load(tmp_path):
    data = np.arange(24, dtype=np.float32).reshape(6, 4)
    np.save(tmp_path / "x.npy", data)
    cal = load_calibration(tmp_path / "x.npy", FLAT)
    assert isinstance(cal._reader.arrays["input"], np.memmap) and cal.labels is None
    batches = [b.inputs["input"] for b in cal.batches(4)]
    np.testing.assert_array_equal(np.concatenate(batches), data)
    assert all(type(x) is np.ndarray and x.flags.writeable for x in batches)  # a copy, not a view of the map
    labelled = load_calibration(npz(tmp_path / "x.npz", input=data, labels=np.arange(6) % 2), FLAT)
    assert labelled.labels.tolist() == [0, 1, 0, 1, 0, 1] and labelled.preprocessing["kind"] == "npz"


def test_folder_is_decoded_batch_by_batch(tmp_path, monkeypatch):
    for i in range(64):
        png(tmp_path / f"{i:02d}.png", noise(8, 8, i))
    calls = []
    real = images_module.decode_image
    monkeypatch.setattr(images_module, "decode_image", lambda *a: calls.append(1) or real(*a))
    cal = load_calibration(tmp_path, RGB, preset="cifar10")
    assert len(calls) == 1  # the first image, to check its shape against the model
    seen = []
    for batch in cal.batches(8):
        seen.append(len(calls))
        assert len(batch) == 8
    assert np.diff([1, *seen]).tolist() == [8] * 8


def zeros(*shape, dtype=np.float32) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


def one_png(folder: Path, h: int = 8, w: int = 8, channels: int = 3) -> Path:
    png(folder / "a.png", noise(h, w, 0, channels))
    return folder


def _corrupt(tmp_path):
    (one_png(tmp_path) / "b.png").write_bytes(b"not an image at all")
    return list(load_calibration(tmp_path, RGB, preset="cifar10").batches(2))  # loading decodes a.png only


def _mixed(tmp_path):
    png(one_png(tmp_path) / "b.png", noise(9, 8, 0))
    return load_calibration(tmp_path, RGB, preset="raw")


def _nan_npz(tmp_path, bad=np.nan):
    x = zeros(6, 4)
    x[3, 2] = bad
    return list(load_calibration(npz(tmp_path / "n.npz", input=x), FLAT).batches(2))


def _unknown_type(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    return load_calibration(tmp_path / "x.txt", RGB)


def _npy_two_inputs(tmp_path):
    np.save(tmp_path / "x.npy", zeros(2, 2))
    return load_calibration(tmp_path / "x.npy", PAIR)


L = load_calibration
BAD_INPUTS = {
    "missing path": (lambda t: L(t / "nope", RGB), ["not found"]),
    "empty folder": (lambda t: L(t, RGB), ["no images found", ".png", ".jpeg"]),
    "corrupt image": (_corrupt, ["cannot read image", "b.png"]),
    "mixed sizes": (_mixed, ["mixed sizes", "a.png", "b.png"]),
    "crop too big": (lambda t: list(L(one_png(t), RGB, crop=10).batches(1)), ["smaller than the crop 10"]),
    "npz missing input": (lambda t: L(npz(t / "x.npz", a=zeros(2, 2)), PAIR), ["no array for input 'b'", "a, b"]),
    "npz extra array": (lambda t: L(npz(t / "x.npz", input=zeros(2, 4), extra=zeros(2)), FLAT),
                        ["no input for: extra"]),
    "wrong rank": (lambda t: L(npz(t / "x.npz", input=zeros(2, 4, 1)), FLAT), ["rank 3", "rank 2"]),
    "wrong dtype": (lambda t: L(npz(t / "x.npz", input=zeros(2, 4, dtype=np.float64)), FLAT),
                    ["float64 but the model wants float32", "convert"]),
    "static dim": (lambda t: L(npz(t / "x.npz", input=zeros(2, 1, 32, 28)), GREY28),
                   ["input 'input' axis 2 is 32 but the model wants 28"]),
    "image size": (lambda t: L(one_png(t, 32, 32, 1), GREY28, preset="cifar10", color="grey", mean=[0.5], std=[0.5]),
                   ["axis 2 is 32 but the model wants 28", "--resize"]),
    "image channels": (lambda t: L(one_png(t, 28, 28), GREY28, color="rgb"),
                       ["axis 1 is 3 but the model wants 1", "--color"]),
    "layout": (lambda t: L(one_png(t), RGB, layout="nhwc"), ["axis 1 is 8 but the model wants 3", "--layout nchw"]),
    "different counts": (lambda t: L(npz(t / "x.npz", a=zeros(2, 2), b=zeros(3, 3)), PAIR),
                         ["different sample counts", "'a' 2", "'b' 3"]),
    "labels length": (lambda t: L(pair_npz(t / "x.npz", labels=np.zeros(5, np.int64)), PAIR),
                      ["'labels'", "40 samples"]),
    "labels not integer": (lambda t: L(pair_npz(t / "x.npz", labels=np.zeros(40)), PAIR), ["'labels'", "not integer"]),
    "nan": (_nan_npz, ["input 'input' holds NaN in sample 3"]),
    "inf": (lambda t: _nan_npz(t, np.inf), ["input 'input' holds Inf in sample 3"]),
    "too few": (lambda t: L(one_png(t), RGB, preset="cifar10").require(10), ["needs at least 10 images, got 1"]),
    "unknown preset": (lambda t: L(t, RGB, preset="coco"), ["coco", "imagenet, cifar10, fashion-mnist, raw"]),
    "folder for two inputs": (lambda t: L(one_png(t), PAIR), ["2 inputs", ".npz"]),
    "npy for two inputs": (_npy_two_inputs, ["2 inputs", ".npz"]),
    "options on arrays": (lambda t: L(pair_npz(t / "x.npz"), PAIR, preset="imagenet"),
                          ["--preset", "image folders only"]),
    "bad mean length": (lambda t: L(t, RGB, mean=[0.1, 0.2]), ["--mean has 2 values", "3 channel"]),
    "zero std": (lambda t: L(t, RGB, std=[0.0]), ["--std", "non-zero"]),
    "unknown file type": (_unknown_type, ["not an image folder"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_line_error(case, tmp_path):
    make, words = BAD_INPUTS[case]
    with pytest.raises(InputError) as info:
        make(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (case, message)


@pytest.mark.skipif(not (REPO_SAMPLE / "sample.npz").is_file(), reason="calibration/fashion-mnist not present")
def test_repository_fashion_mnist_sample():
    """The shipped folder, decoded with the preset, equals the shipped preprocessed .npz, labels included."""
    folder = load_calibration(REPO_SAMPLE, GREY28, preset="fashion-mnist")
    assert len(folder.class_names) == 10 and folder.count == 500
    arrays = load_calibration(REPO_SAMPLE / "sample.npz", GREY28)
    assert folder.labels.tolist() == arrays.labels.tolist()
    for a, b in zip(folder.batches(100), arrays.batches(100)):
        np.testing.assert_allclose(a.inputs["input"], b.inputs["input"], atol=1e-5)
    assert np.bincount(folder.split(0.2, seed=0)[1].labels).tolist() == [10] * 10
