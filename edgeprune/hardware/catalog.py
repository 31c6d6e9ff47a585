"""The built-in device profiles (``devices/*.toml``, shipped in the wheel), their aliases, and user files.

``--device NAME`` names a built-in profile or an alias; ``--device path/to/file.toml`` loads a user's profile.
``jetson`` means the Jetson this runs on when it is one, the Orin Nano (the current entry module) otherwise.
``host`` (and ``cpu``) is the machine this runs on: measured on first use and cached (`host_cache`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edgeprune.errors import InputError
from edgeprune.hardware.profile import DeviceProfile, load_profile

logger = logging.getLogger(__name__)

ALIASES = {
    "jetson": "jetson-orin-nano",
    "orin": "jetson-orin-nano",
    "rpi5": "raspberry-pi-5",
    "pi5": "raspberry-pi-5",
    "x86": "x86-cpu",
    "cpu": "host",
}

# words of /proc/device-tree/model on a Jetson -> the profile name
_JETSON_MODELS = (
    ("agx orin", "jetson-agx-orin"),
    ("orin nano", "jetson-orin-nano"),
    ("orin nx", "jetson-orin-nano"),
    ("xavier nx", "jetson-xavier-nx"),
    ("nano", "jetson-nano"),
)


@dataclass(frozen=True)
class DeviceEntry:
    name: str
    path: Path
    aliases: tuple[str, ...]


def builtin_dir() -> Path:
    """Where the built-in profiles are: inside the installed package, or the checkout's ``devices/``."""
    packaged = Path(str(resources.files("edgeprune.hardware") / "devices"))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "devices"


def builtin_devices() -> tuple[DeviceEntry, ...]:
    folder = builtin_dir()
    names = sorted(p.stem for p in folder.glob("*.toml"))
    aliases = {name: tuple(sorted(a for a, n in _aliases().items() if n == name)) for name in names}
    return tuple(DeviceEntry(name, folder / f"{name}.toml", aliases[name]) for name in names)


def resolve_device(spec: str) -> DeviceProfile:
    """A built-in name, an alias, or the path of a profile file."""
    text = str(spec).strip()
    if text.endswith(".toml") or "/" in text or "\\" in text:
        return load_profile(text)
    entries = {e.name: e for e in builtin_devices()}
    name = _aliases().get(text.lower(), text.lower())
    if name not in entries:
        known = ", ".join(entries)
        aliases = ", ".join(f"{a} -> {n}" for a, n in sorted(_aliases().items()))
        raise InputError(
            f"unknown device '{spec}'; known devices: {known} (aliases: {aliases}), or give the path of a profile .toml"
        )
    profile = load_profile(entries[name].path)
    if profile.name != name:
        raise InputError(f"{entries[name].path}: 'name' is '{profile.name}' but the file is named '{name}.toml'")
    if name == "host":
        from edgeprune.hardware.host_cache import host_profile, mode

        if mode() == "shipped":
            _check_host(profile)
        return host_profile(profile)  # this machine, measured on first use and cached
    return profile


def _check_host(profile: DeviceProfile) -> None:
    """The built-in host profile describes the machine it was measured on; say so when this is another one."""
    from edgeprune.hardware.fingerprint import cpu_name

    measured_on, here = profile.fingerprint.get("cpu", ""), cpu_name()
    if measured_on and measured_on != here:
        logger.warning(
            "the built-in host profile was measured on '%s', this machine is '%s': run `edgeprune "
            "profile --device host -o host.toml` and use --device host.toml",
            measured_on,
            here,
        )


def _aliases() -> dict[str, str]:
    return {**ALIASES, "jetson": running_jetson() or ALIASES["jetson"]}


def running_jetson(model_file: Path = Path("/proc/device-tree/model")) -> str | None:
    """The profile name of the Jetson this runs on, or None on anything else."""
    try:
        model = model_file.read_text(encoding="utf-8", errors="replace").lower()
    except OSError:
        return None
    if "jetson" not in model:
        return None
    return next((name for words, name in _JETSON_MODELS if words in model), None)
