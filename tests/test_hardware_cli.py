"""`devices`, `profile`, `bench`, and latency targets in `optimize`, through the command line. Timings are never
asserted (they vary by tens of percent on shared machines): the tests check structure, files and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx_graphsurgeon.logger import G_LOGGER

from builders import conv_bn_relu_model, write_model
from cli_runner import run
from corpus import export_corpus_model
from edgeprune.hardware import load_profile, resolve_device
from edgeprune.hardware.layers import LayerSpec
from edgeprune.hardware.single_layer import layer_model, sample_counts
from edgeprune.hardware.timing import Runner, compare, measure
from edgeprune.runtime import tensorrt_works

G_LOGGER.severity = G_LOGGER.ERROR


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_model(conv_bn_relu_model(channels=(3, 16, 8), size=8), tmp_path_factory.mktemp("tiny") / "tiny.onnx")


def test_devices_lists_every_builtin(capsys):
    code, out, _ = run(capsys, "devices")
    assert code == 0
    for name in ("host", "jetson-nano", "jetson-xavier-nx", "jetson-orin-nano", "jetson-agx-orin", "raspberry-pi-5",
                 "x86-cpu"):
        assert name in out
    code, out, _ = run(capsys, "devices", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["jetson-orin-nano"]["aliases"] == ["jetson", "orin"] and rows["jetson-orin-nano"]["alignment"] == 8


def test_bench_reports_median_and_spread(capsys, tiny):
    code, out, _ = run(capsys, "bench", tiny, "--repeats", 5, "--warmup", 1, "--json")
    result = json.loads(out)
    assert code == 0 and result["runs"] == 5 and result["warmup"] == 1
    assert result["p10_ms"] <= result["median_ms"] <= result["p90_ms"]
    assert result["providers"][0] == "CPUExecutionProvider"
    code, out, _ = run(capsys, "bench", tiny, "--vs", tiny, "--repeats", 6, "--warmup", 1)
    assert code == 0 and "ratio" in out and "interleaved" in out and out.count("median") == 2


def test_bench_runs_as_the_device_does(capsys, tiny):
    code, out, err = run(capsys, "bench", tiny, "--device", "raspberry-pi-5", "--repeats", 3, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["threads"] == 4 and result["providers"][0] == "CPUExecutionProvider"
    if not tensorrt_works():
        code, _, err = run(capsys, "bench", tiny, "--device", "jetson", "--repeats", 3)
        assert code == 2 and "TensorRT execution provider does not work" in err


def test_bench_vs_json_structure(capsys, tiny):
    code, out, _ = run(capsys, "bench", tiny, "--vs", tiny, "--repeats", 4, "--json", "--threads", 1)
    result = json.loads(out)
    assert code == 0 and result["rounds"] == 4 and result["a"]["runs"] == result["b"]["runs"] == 4
    assert result["ratio"] > 0 and result["noise"] >= 0


@pytest.mark.parametrize("args, words", [
    (("bench", "missing.onnx"), "model not found"),
    (("bench", "{bad}"), "ONNX Runtime cannot load the model"),
    (("bench", "{tiny}", "--repeats", 0), "repeats >= 1"),
    (("profile", "--device", "jetson-tx9", "-o", "{out}"), "known devices: host"),
    (("profile", "--device", "{bad}", "-o", "{out}"), "not a valid TOML device profile"),
    (("profile", "--device", "host", "--model", "missing.onnx", "-o", "{out}"), "model not found"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, tiny, args, words):
    bad = tmp_path / "bad.toml"
    bad.write_text("not [ toml")
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    names = {"{bad}": str(bad) if "profile" in args else str(tmp_path / "bad.onnx"), "{tiny}": str(tiny),
             "{out}": str(tmp_path / "out.toml")}
    code, out, err = run(capsys, *[names.get(str(a), a) for a in args])
    assert code == 2 and words in err and err.count("\n") == 1
    assert not (tmp_path / "out.toml").exists()


@pytest.mark.skipif(tensorrt_works(), reason="TensorRT works here: profiling a TensorRT device is legitimate")
def test_profiling_a_device_with_another_provider_is_refused(capsys, tmp_path):
    code, _, err = run(capsys, "profile", "--device", "jetson", "-o", tmp_path / "j.toml")
    assert code == 2 and "tensorrt execution provider, which does not work on this machine" in err
    assert not (tmp_path / "j.toml").exists()


def test_profile_writes_tables_the_host_then_uses(capsys, tmp_path, tiny):
    out = tmp_path / "host.toml"
    code, text, err = run(capsys, "profile", "--device", "host", "--model", tiny, "--points", 3,
                          "--seconds-per-point", 0.002, "-o", out)
    assert code == 0, err
    assert "2 layer tables" in text and "1 whole models" in text
    profile = load_profile(out)
    assert profile.fingerprint["provider"] == "cpu" and profile.fingerprint["onnxruntime"] == ort.__version__
    assert "measured by `edgeprune profile`" in profile.roofline.sources[0]
    conv1, conv2 = sorted(profile.layers.values(), key=lambda t: len(t.cin))
    assert conv1.cin == (3,) and conv1.cout == (8, 16)  # outputs prunable, on the 8-channel alignment step
    assert conv2.cin == (8, 16) and conv2.cout == (8,)
    from edgeprune.analysis import analyze
    from edgeprune.graph import load_model
    from edgeprune.hardware import LatencyModel

    model = load_model(tiny)
    latency = LatencyModel(profile, model, analyze(model))
    assert latency.table_coverage == 1.0 and "this model" in latency.factor_source
    measured = profile.models[model.source_sha256]
    assert latency.predict_full() == pytest.approx(measured.ms)
    # the second point of the whole-model correction: the model with its group cut to half (16 -> 8), whole
    half = analyze(model).keep_mask({g.id: tuple(range(8)) for g in analyze(model).prunable_groups})
    assert measured.reduced_ms > 0 and 0 < measured.reduced_layers_ms <= measured.layers_ms  # tables made monotone
    assert measured.reduced_layers_ms == pytest.approx(latency.layer_sum(half), rel=1e-5)  # stored to 6 digits


def test_profile_without_a_model_measures_the_roofline(capsys, tmp_path):
    code, text, _ = run(capsys, "profile", "--device", "x86", "-o", tmp_path / "x.toml")
    profile = load_profile(tmp_path / "x.toml")
    assert code == 0 and "GFLOP/s" in text and not profile.layers and profile.name == "x86-cpu"
    assert profile.fingerprint["cpu"]


def test_single_layer_models_have_the_asked_channels():
    layer = LayerSpec("c", "Conv", 1, 16, 16, (8, 8), (8, 8), (3, 3), 16,
                      (("group", 16), ("kernel_shape", (3, 3)), ("pads", (1, 1, 1, 1))), "x", "y", True, True)
    session = ort.InferenceSession(layer_model(layer, 8, 8), providers=["CPUExecutionProvider"])
    out = session.run(None, {"x": np.zeros((1, 8, 8, 8), np.float32)})[0]
    assert out.shape == (1, 8, 8, 8)
    assert sample_counts(64, 8, 5, True) == (8, 24, 40, 56, 64)
    assert sample_counts(64, 8, 5, False) == (64,) and sample_counts(6, 8, 5, True) == (6,)


def test_timing_structure(tiny):
    runner = Runner(tiny.read_bytes())
    timing = measure(runner, warmup=1, repeats=7)
    assert timing.runs == 7 and timing.p10_ms <= timing.median_ms <= timing.p90_ms and timing.spread >= 0
    result = compare(runner, Runner(tiny.read_bytes()), warmup=0, rounds=5)
    assert result.rounds == 5 and result.a.runs == result.b.runs == 5 and result.ratio > 0


def test_a_quick_model_is_compared_a_few_runs_at_a_time(tiny, monkeypatch):
    """Timings of a model far quicker than SAMPLE_MS each take that many runs in a row; a slow one runs once."""
    import edgeprune.hardware.timing as timing

    runner = Runner(tiny.read_bytes())
    result = compare(runner, Runner(tiny.read_bytes()), warmup=1, rounds=3)
    once = min(runner.once_ms() for _ in range(5))
    assert result.a.per_timing > 1 and result.a.per_timing * once >= timing.SAMPLE_MS * 0.2
    assert result.to_dict()["a"]["runs_per_timing"] == result.a.per_timing and result.a.runs == 3
    monkeypatch.setattr(timing, "SAMPLE_MS", 1e-6)  # every model is slow next to it
    assert compare(runner, runner, warmup=0, rounds=2).b.per_timing == 1


@pytest.fixture(scope="module")
def resnet(corpus_dir) -> Path:
    return export_corpus_model("resnet20", "legacy", corpus_dir)


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("calib") / "calib.npz"
    np.savez(path, input=rng.standard_normal((48, 1, 28, 28)).astype(np.float32))
    return path


def optimize(capsys, model, calib, out, *extra):
    return run(capsys, "optimize", model, "--calib", calib, "--out", out, "--batch-size", 16, "--no-reconstruct",
               "--criterion", "l1", *extra)


def test_optimize_to_a_speedup_reports_predicted_and_measured_latency(capsys, resnet, calib, tmp_path):
    code, out, err = optimize(capsys, resnet, calib, tmp_path / "run", "--device", "x86", "--target-speedup", "1.3x")
    assert code == 0, err
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    latency = report["latency"]
    assert latency["device"] == "x86-cpu" and latency["alignment"] == 8
    assert latency["predicted_ms_before"] / latency["predicted_ms_after"] >= 1.3
    assert latency["measured_host"]["rounds"] == 20 and latency["measured_host"]["speedup"] > 0
    assert report["settings"]["budget"]["target-speedup"] == 1.3 and report["budget"]["alignment"] == 8
    assert report["settings"]["latency"]["device"] == "x86" and report["budget"]["speedup"] == 1.3
    kept = [row["kept"] for row in report["layers"] if row["prunable"]]
    assert all(k % 8 == 0 for k in kept)  # the device's alignment was part of the search
    rows = latency["layers"]
    assert rows and {"macs_before", "macs_after", "mac_reduction", "predicted_ms_before", "predicted_ms_after"} <= set(rows[0])
    assert sum(r["macs_after"] for r in rows) == latency["macs_after"] < latency["macs_before"]
    for words in ("latency", "predicted", "measured", "x86-cpu"):
        assert words in out


def test_optimize_align_flag_wins_over_the_device(capsys, resnet, calib, tmp_path):
    code, _, err = optimize(capsys, resnet, calib, tmp_path / "run", "--device", "x86", "--target-flops", "0.7",
                            "--align", 4)
    assert code == 0, err
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["settings"]["budget"]["align"] == 4 and report["budget"]["alignment"] == 4
    assert report["latency"]["device"] == "x86-cpu"


def test_optimize_latency_errors(capsys, resnet, calib, tmp_path):
    code, _, err = optimize(capsys, resnet, calib, tmp_path / "a", "--device", "jetson", "--target-latency", "1us")
    assert code == 2 and "frozen part of the model already costs" in err
    code, _, err = optimize(capsys, resnet, calib, tmp_path / "b", "--device", "x86", "--target-speedup", "1.5x",
                            "--floor", 0.9)
    assert code == 1 and "cannot be reached" in err and "predicted latency" in err
    code, _, err = optimize(capsys, resnet, calib, tmp_path / "c", "--device", "nowhere", "--target-speedup", "2x")
    assert code == 2 and "unknown device 'nowhere'" in err
    assert not any((tmp_path / name).exists() and any((tmp_path / name).iterdir()) for name in "abc")


def test_a_device_profile_measured_for_another_provider_is_refused(capsys, resnet, calib, tmp_path):
    text = (resolve_device("host").source and Path(resolve_device("host").source).read_text())
    text += '\n[[measured.models]]\nsha256 = "x"\nname = "m"\nms = 1.0\n'
    text = text.replace('provider = "cpu"\nthreads = "0"', 'provider = "cuda"\nthreads = "0"')
    path = tmp_path / "other.toml"
    path.write_text(text)
    code, _, err = optimize(capsys, resnet, calib, tmp_path / "run", "--device", path, "--target-speedup", "1.2x")
    assert code == 2 and "measured with another provider" in err


def test_device_and_latency_targets_come_from_a_config_file(capsys, resnet, calib, tmp_path):
    config = tmp_path / "settings.toml"
    config.write_text('[optimize.latency]\ndevice = "raspberry-pi-5"\n[optimize.budget]\ntarget-speedup = "1.2x"\n')
    code, _, err = optimize(capsys, resnet, calib, tmp_path / "run", "--config", config)
    assert code == 0, err
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["latency"]["device"] == "raspberry-pi-5" and report["budget"]["alignment"] == 4
    assert report["latency"]["predicted_speedup"] >= 1.2


def test_profile_and_bench_run_without_torch(capsys, tmp_path, tiny, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # an `import torch` anywhere on the way now fails
    code, _, err = run(capsys, "profile", "--device", "host", "--model", tiny, "--points", 2,
                       "--seconds-per-point", 0.002, "-o", tmp_path / "p.toml")
    assert code == 0, err
    code, out, err = run(capsys, "bench", tiny, "--repeats", 3, "--warmup", 1)
    assert code == 0 and "median" in out, err
