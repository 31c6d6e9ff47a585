"""Device profiles: the TOML schema read back exactly, one-line errors naming the file and key, the catalog."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest

from edgeprune.errors import InputError
from edgeprune.hardware import (
    DeviceProfile, LayerTable, ModelMeasurement, builtin_devices, dumps_profile, load_profile, resolve_device,
    save_profile,
)
from edgeprune.hardware.catalog import running_jetson
from edgeprune.hardware.profile import parse_profile

BUILTIN = {"host", "jetson-nano", "jetson-xavier-nx", "jetson-orin-nano", "jetson-agx-orin", "raspberry-pi-5", "x86-cpu"}


def measured_profile() -> DeviceProfile:
    base = resolve_device("host")
    table = LayerTable("Conv|k", (8, 16), (8, 16, 24), ((1.0, 2.0, 3.0), (2.0, 3.5, 4.25)))
    depthwise = LayerTable("Conv|dw", (8, 16), (8, 16), ((0.5,), (0.75,)), depthwise=True)
    return replace(
        base, fingerprint=MappingProxyType({"provider": "cpu", "onnxruntime": "1.0", "cpu": "a \"quoted\" cpu"}),
        layers=MappingProxyType({table.key: table, depthwise.key: depthwise}),
        models=MappingProxyType({"abc": ModelMeasurement("abc", "m.onnx", 12.5, 10.0),
                                 "def": ModelMeasurement("def", "n.onnx", 4.0, 3.0, "x=1,3,8,8", 2.5, 1.5)}),
    )


def test_every_builtin_device_loads_and_cites_its_sources():
    entries = {e.name: e for e in builtin_devices()}
    assert BUILTIN <= set(entries)
    for name in entries:
        profile = resolve_device(name)
        assert profile.name == name and profile.alignment >= 1 and profile.peak_flops > 0
        assert profile.roofline.sources and all(s.strip() for s in profile.roofline.sources)
    assert resolve_device("jetson-orin-nano").provider == "tensorrt"
    assert resolve_device("raspberry-pi-5").provider == "cpu"


def test_aliases_and_the_running_jetson(tmp_path):
    assert resolve_device("jetson").name in {"jetson-orin-nano", running_jetson()}
    assert resolve_device("RPI5").name == "raspberry-pi-5"
    model = tmp_path / "model"
    model.write_text("NVIDIA Jetson AGX Orin Developer Kit\x00")
    assert running_jetson(model) == "jetson-agx-orin"
    model.write_text("Raspberry Pi 5 Model B Rev 1.0\x00")
    assert running_jetson(model) is None
    assert running_jetson(tmp_path / "missing") is None


def test_a_profile_round_trips_through_toml(tmp_path):
    profile = measured_profile()
    path = save_profile(profile, tmp_path / "p.toml", header="a header\nwith two lines")
    back = load_profile(path)
    assert back == replace(profile, source=str(path))
    assert path.read_text().startswith("# a header\n# with two lines\n")


def test_a_user_profile_is_loaded_by_path(tmp_path):
    path = save_profile(measured_profile(), tmp_path / "mine.toml")
    assert resolve_device(str(path)).layers.keys() == measured_profile().layers.keys()


def test_unknown_device_lists_the_known_ones():
    with pytest.raises(InputError) as error:
        resolve_device("jetson-tx9")
    message = str(error.value)
    assert "unknown device 'jetson-tx9'" in message
    assert all(name in message for name in BUILTIN) and "jetson -> " in message


def _data() -> dict:
    return tomllib.loads(dumps_profile(measured_profile()))


@pytest.mark.parametrize("change, words", [
    (lambda d: d.update(format="something-else"), "'format' must be"),
    (lambda d: d.update(version=2), "version 2 is not supported"),
    (lambda d: d["runtime"].pop("provider"), "missing key 'runtime.provider'"),
    (lambda d: d["runtime"].update(provider="vulkan"), "'runtime.provider' must be one of cpu, cuda, tensorrt"),
    (lambda d: d["runtime"].update(precision="int8"), "no figure for the device's precision 'int8'"),
    (lambda d: d["roofline"].update(memory_bandwidth=-1.0), "'roofline.memory_bandwidth' must be positive"),
    (lambda d: d["roofline"].update(memory_bandwidth="fast"), "'roofline.memory_bandwidth' must be a number"),
    (lambda d: d["alignment"].update(channels=0), "alignment.channels must be a positive"),
    (lambda d: d["measured"]["fingerprint"].update(provider="cuda"), "measured with another provider"),
    (lambda d: d["measured"]["layers"][0].update(ms=[[1.0]]), "ms must have 2 rows of 3 values"),
    (lambda d: d["measured"]["layers"][0].update(cin=[16, 8]), "increasing positive channel counts"),
    (lambda d: d["measured"]["layers"][0].update(ms=[[1.0, 2.0, 0.0], [1.0, 2.0, 3.0]]), "positive milliseconds"),
    (lambda d: d["measured"]["models"][0].pop("ms"), "missing key 'measured.models[0].ms'"),
])
def test_malformed_profiles_fail_with_the_key(change, words):
    data = _data()
    change(data)
    with pytest.raises(InputError) as error:
        parse_profile(data, "devices/x.toml")
    assert str(error.value).startswith("devices/x.toml: ") and words in str(error.value)
    assert "\n" not in str(error.value)


def test_unreadable_files_fail_cleanly(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("format = \n")
    with pytest.raises(InputError, match="not a valid TOML device profile"):
        load_profile(bad)
    with pytest.raises(InputError, match="device profile not found"):
        resolve_device(str(tmp_path / "none.toml"))


def test_a_builtin_file_must_carry_its_own_name(tmp_path, monkeypatch):
    from edgeprune.hardware import catalog

    save_profile(replace(resolve_device("x86-cpu"), name="other"), tmp_path / "x86-cpu.toml")
    monkeypatch.setattr(catalog, "builtin_dir", lambda: tmp_path)
    with pytest.raises(InputError, match="'name' is 'other'"):
        resolve_device("x86-cpu")


def test_devices_folder_is_shipped_inside_the_package():
    from edgeprune.hardware.catalog import builtin_dir

    folder = builtin_dir()
    assert folder.is_dir() and (folder / "host.toml").is_file()
    top = Path(__file__).resolve().parents[1] / "devices"
    assert sorted(p.name for p in top.glob("*.toml")) == sorted(p.name for p in folder.glob("*.toml"))
