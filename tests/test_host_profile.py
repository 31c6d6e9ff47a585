"""`--device host` is this machine: measured on first use, cached by fingerprint in the user's cache folder,
reused after; measured again when the cache is unreadable or from another setup; the shipped example when
EDGEPRUNE_HOST_PROFILE=shipped. The measurements are replaced by fast fakes except in one test."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest
from builders import conv_bn_relu_model, write_model
from cli_runner import run

from edgeprune.errors import InputError
from edgeprune.hardware import builtin_devices, host_cache, load_profile, resolve_device
from edgeprune.hardware.fingerprint import cpu_alignment, fingerprint
from edgeprune.hardware.profile import LayerTable, ModelMeasurement, Roofline


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(host_cache.MODE_VARIABLE, raising=False)
    return tmp_path / "cache" / "edgeprune"


@pytest.fixture
def fake(monkeypatch):
    """Fast stand-ins for the roofline and table measurements; ``calls`` counts them."""
    import edgeprune.hardware.profiler as profiler

    calls = {"roofline": 0, "tables": 0}

    def measure_roofline(device, settings=None):
        calls["roofline"] += 1
        roof = Roofline(MappingProxyType({"fp32": 1.5e11}), 2.5e10, 0.6, 10.0, ("fake",), "")
        stamp = MappingProxyType(fingerprint(device.provider, device.threads))
        return replace(device, roofline=roof, fingerprint=stamp, measured_overhead_us=2.0)

    def profile_model(device, model, settings=None, progress=None, input_shapes=()):
        from edgeprune.analysis import analyze
        from edgeprune.hardware.layers import model_layers

        calls["tables"] += 1
        tables = dict(device.layers)
        for layer in model_layers(model, analyze(model)):
            tables[layer.key] = LayerTable(layer.key, (layer.cin,), (layer.cout,), ((0.5,),))
        models = {**device.models, model.source_sha256: ModelMeasurement(model.source_sha256, "m.onnx", 1.0, 1.0, "")}
        return replace(device, layers=MappingProxyType(tables), models=MappingProxyType(models))

    monkeypatch.setattr(profiler, "measure_roofline", measure_roofline)
    monkeypatch.setattr(profiler, "profile_model", profile_model)
    return calls


def _shipped():
    return load_profile(next(e.path for e in builtin_devices() if e.name == "host"))


def test_first_use_measures_this_machine_and_later_uses_the_cache(cache, fake):
    first = resolve_device("host")
    assert fake["roofline"] == 1 and first.peak_flops == 1.5e11
    files = list(cache.glob("host-*.toml"))
    assert len(files) == 1 and first.source == str(files[0])
    again = resolve_device("cpu")  # the alias: the same machine
    assert fake["roofline"] == 1 and again.peak_flops == 1.5e11 and again.name == "host"
    assert again.fingerprint["cpu"] == fingerprint("cpu", 0)["cpu"]


def test_the_shipped_example_is_used_as_it_is_when_asked(cache, fake, monkeypatch):
    monkeypatch.setenv(host_cache.MODE_VARIABLE, "shipped")
    profile = resolve_device("host")
    assert fake["roofline"] == 0 and not cache.exists()
    assert profile == _shipped()


def test_an_unknown_mode_is_refused_in_one_line(cache, monkeypatch):
    monkeypatch.setenv(host_cache.MODE_VARIABLE, "sometimes")
    with pytest.raises(InputError, match="EDGEPRUNE_HOST_PROFILE='sometimes' is not one of measure, roofline, shipped"):
        resolve_device("host")


def test_a_cache_from_another_setup_is_measured_again(cache, fake, caplog):
    path = resolve_device("host").source
    text = Path(path).read_text(encoding="utf-8")
    onnxruntime = fingerprint("cpu", 0)["onnxruntime"]
    Path(path).write_text(text.replace(f'onnxruntime = "{onnxruntime}"', 'onnxruntime = "0.0.1"'), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="edgeprune.hardware.host_cache"):
        profile = resolve_device("host")
    assert fake["roofline"] == 2 and profile.fingerprint["onnxruntime"] == onnxruntime
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "another setup" in lines[0] and "'0.0.1'" in lines[0]
    assert load_profile(path).fingerprint["onnxruntime"] == onnxruntime  # and the cache holds the new one


def test_a_corrupt_cache_is_measured_again(cache, fake, caplog):
    path = Path(resolve_device("host").source)
    path.write_text("format = [ not toml", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="edgeprune.hardware.host_cache"):
        profile = resolve_device("host")
    assert fake["roofline"] == 2 and profile.peak_flops == 1.5e11
    assert any("unreadable" in r.getMessage() for r in caplog.records)
    assert load_profile(path).peak_flops == 1.5e11


def test_a_cache_that_cannot_be_written_is_not_an_error(tmp_path, fake, monkeypatch, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # a file where the folder should be
    monkeypatch.delenv(host_cache.MODE_VARIABLE, raising=False)
    with caplog.at_level(logging.WARNING, logger="edgeprune.hardware.host_cache"):
        profile = resolve_device("host")
    assert profile.peak_flops == 1.5e11 and profile.source == ""
    assert any("cannot write" in r.getMessage() for r in caplog.records)


def test_a_model_s_tables_are_measured_once_and_used(cache, fake, tmp_path):
    from edgeprune.analysis import analyze
    from edgeprune.graph import load_model
    from edgeprune.stages import latency_model

    model = load_model(write_model(conv_bn_relu_model(channels=(3, 16, 8), size=8), tmp_path / "m.onnx"))
    analysis = analyze(model)
    latency = latency_model(None, model, analysis)
    assert fake["tables"] == 1 and latency.table_coverage == 1.0 and "this model" in latency.factor_source
    latency_model("host", model, analysis)
    assert fake["tables"] == 1  # cached
    assert latency_model("jetson-orin-nano", model, analysis).table_coverage == 0.0  # other devices untouched
    other = load_model(write_model(conv_bn_relu_model(channels=(3, 8, 8), size=8), tmp_path / "other.onnx"))
    second = latency_model(None, other, analyze(other))
    assert fake["tables"] == 2 and set(second.profile.models) == {other.source_sha256}  # one model's own figures


def test_roofline_mode_measures_no_tables(cache, fake, tmp_path, monkeypatch):
    from edgeprune.analysis import analyze
    from edgeprune.graph import load_model
    from edgeprune.stages import latency_model

    monkeypatch.setenv(host_cache.MODE_VARIABLE, "roofline")
    model = load_model(write_model(conv_bn_relu_model(channels=(3, 16, 8), size=8), tmp_path / "m.onnx"))
    latency = latency_model(None, model, analyze(model))
    assert fake == {"roofline": 1, "tables": 0} and latency.table_coverage == 0.0


def test_profile_on_the_host_keeps_its_measurement_for_the_next_run(cache, fake, capsys, tmp_path):
    model = write_model(conv_bn_relu_model(channels=(3, 16, 8), size=8), tmp_path / "m.onnx")
    code, _, err = run(capsys, "profile", "--device", "host", "--model", model, "-o", tmp_path / "p.toml")
    assert code == 0, err
    assert fake == {"roofline": 1, "tables": 1}  # from the shipped settings: no first-use measurement before
    assert "kept as this machine's host profile" in err
    from edgeprune.analysis import analyze
    from edgeprune.graph import load_model
    from edgeprune.stages import latency_model

    profile = resolve_device("host")
    assert fake["roofline"] == 1 and not profile.layers and not profile.models  # the roofline: for every model
    loaded = load_model(model)
    latency = latency_model("host", loaded, analyze(loaded))  # and that model's tables
    assert fake["tables"] == 1 and latency.table_coverage == 1.0 and "this model" in latency.factor_source


def test_a_real_first_measurement_holds_for_this_machine(cache):
    """The one test that really measures (the quick roofline: a few seconds): figures and fingerprint."""
    profile = resolve_device("host")
    assert profile.peak_flops > 1e9 and profile.roofline.memory_bandwidth > 1e8
    assert {k: profile.fingerprint[k] for k in host_cache.KEY_FIELDS} == host_cache.setup(_shipped())
    assert profile.alignment == 8 and profile.measured  # the CPU's, pinned to an AVX2 one (conftest.py)


def test_the_alignment_is_the_cpus_convolution_block():
    assert cpu_alignment("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512dq\n")[0] == 16
    assert cpu_alignment("flags\t\t: fpu sse2 avx avx2 fma\n")[0] == 8
    assert cpu_alignment("flags\t\t: fpu sse2\n") is None  # not told: the shipped file's
    assert cpu_alignment("Features\t: fp asimd evtstrm\n") is None  # an ARM CPU lists no x86 flags


def test_the_host_aligns_to_this_cpu_and_a_cache_of_another_alignment_is_measured_again(
    cache, fake, monkeypatch, caplog
):
    import edgeprune.hardware.fingerprint as fingerprints

    monkeypatch.setattr(fingerprints, "cpu_alignment", lambda: (16, "AVX-512F"))
    first = resolve_device("host")
    assert first.alignment == 16 and fake["roofline"] == 1
    assert load_profile(first.source).alignment == 16  # cached with it
    monkeypatch.setattr(fingerprints, "cpu_alignment", lambda: (8, "AVX2"))
    with caplog.at_level(logging.WARNING):
        again = resolve_device("host")
    assert fake["roofline"] == 2 and again.alignment == 8
    assert "aligns channels to 16, this CPU's convolutions to 8: measuring again" in caplog.text
    monkeypatch.setattr(fingerprints, "cpu_alignment", lambda: None)
    assert resolve_device("host").alignment == _shipped().alignment  # unknown: the shipped file's
