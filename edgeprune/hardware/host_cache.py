"""`--device host` is the machine it runs on: its roofline and the model's layer tables, measured here on
first use and cached, instead of the figures of the machine the shipped ``devices/host.toml`` was measured on.

The cache is one profile file per setup, in the user's cache folder (``$XDG_CACHE_HOME/edgeprune``, else
``~/.cache/edgeprune``), named by the fingerprint it holds for: ONNX Runtime's version, the provider, the
threads and the CPU. A file that does not parse, or whose fingerprint is not this machine's, is measured
again (one log line says why). Measuring is quick: the roofline in about two seconds, a model's layers at
three channel counts per axis in a few seconds more (``QUICK``); ``edgeprune profile --device host`` does
the full measurement and stores it here too. The channel alignment is this CPU's (16 with AVX-512F, where
ONNX Runtime's NCHWc convolutions block channels by 16; 8 with AVX2), the shipped file's where it is unknown;
a cached profile of another alignment is measured again.

``EDGEPRUNE_HOST_PROFILE`` chooses: ``measure`` (the default: roofline and each model's tables),
``roofline`` (this machine's roofline only) or ``shipped`` (the example file as it is; no measuring, the same
predictions on every machine, what a test suite wants).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from edgeprune.errors import InputError
from edgeprune.hardware.profile import DeviceProfile, load_profile

logger = logging.getLogger(__name__)

MODE_VARIABLE = "EDGEPRUNE_HOST_PROFILE"
MODES = ("measure", "roofline", "shipped")
KEY_FIELDS = ("onnxruntime", "provider", "threads", "cpu")  # what a cached measurement holds for


def mode() -> str:
    """The host profile mode from ``EDGEPRUNE_HOST_PROFILE`` (``measure`` when unset)."""
    value = os.environ.get(MODE_VARIABLE, "").strip().lower() or "measure"
    if value not in MODES:
        raise InputError(
            f"{MODE_VARIABLE}={value!r} is not one of {', '.join(MODES)}; unset it to measure this machine"
        )
    return value


def quick():
    """The first-use measurement: three channel counts per axis, 20 ms of timing per point (a ResNet-18 or a
    MobileNetV2 at 224x224 in about 8 s on 2 cores; `edgeprune profile` defaults to 5 and 150 ms)."""
    from edgeprune.hardware.profiler import ProfileSettings

    return ProfileSettings(points=3, seconds_per_point=0.02)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgeprune"


def setup(shipped: DeviceProfile) -> dict[str, str]:
    """This machine's values of the fingerprint fields a cached host profile must match."""
    import onnxruntime

    from edgeprune.hardware.fingerprint import cpu_name

    return {
        "onnxruntime": onnxruntime.__version__,
        "provider": shipped.provider,
        "threads": str(shipped.threads),
        "cpu": cpu_name(),
    }


def cache_path(shipped: DeviceProfile) -> Path:
    key = hashlib.sha256(repr(sorted(setup(shipped).items())).encode()).hexdigest()[:16]
    return cache_dir() / f"host-{key}.toml"


def host_profile(shipped: DeviceProfile) -> DeviceProfile:
    """The host profile to use: the cached measurement of this machine (measured now when there is none
    that holds), or ``shipped`` itself in ``shipped`` mode."""
    if mode() == "shipped":
        return shipped
    path = cache_path(shipped)
    here = for_this_cpu(shipped)
    cached = _cached(path, setup(shipped))
    if cached is not None and cached.alignment != here.alignment:
        logger.warning(
            "the cached host profile %s aligns channels to %d, this CPU's convolutions to %d: measuring again",
            path,
            cached.alignment,
            here.alignment,
        )
        cached = None
    if cached is not None:
        return cached
    from edgeprune.hardware.profiler import measure_roofline

    logger.info("measuring this machine's roofline for --device host (once; cached in %s)", path)
    measured = measure_roofline(here, quick())
    return _store(_as_host(measured, here), path)


def for_this_cpu(shipped: DeviceProfile) -> DeviceProfile:
    """``shipped`` with this CPU's channel alignment (the shipped one where the CPU does not tell)."""
    from edgeprune.hardware.fingerprint import cpu_alignment

    found = cpu_alignment()
    if found is None:
        return shipped
    return replace(shipped, alignment=found[0], alignment_notes=found[1])


def with_model_tables(profile: DeviceProfile, model, analysis) -> DeviceProfile:
    """``profile`` with tables for every layer of ``model`` and its whole-model time, in ``measure`` mode,
    when ``profile`` is the cached host: measured now on first use, cached beside the roofline (one file
    per model, so one model's measurements never enter another's predictions); unchanged otherwise."""
    if mode() != "measure" or not _is_cache(profile):
        return profile
    path = Path(profile.source).with_suffix(f".{model.source_sha256[:16]}.toml")
    cached = _cached(path, {k: profile.fingerprint.get(k, "") for k in KEY_FIELDS})
    if cached is not None and model.source_sha256 in cached.models and cached.alignment == profile.alignment:
        return cached
    from edgeprune.hardware.layers import model_layers
    from edgeprune.hardware.profiler import profile_model

    layers = {layer.key for layer in model_layers(model, analysis)}
    logger.info("measuring the model's %d layer shapes on this machine (once; cached in %s)", len(layers), path)
    measured = profile_model(profile, model, quick())
    return _store(measured, path)


def store(profile: DeviceProfile, shipped: DeviceProfile) -> Path | None:
    """Keep a full measurement of this machine (``edgeprune profile --device host``) in the cache, where the
    next ``--device host`` finds it: its roofline, and its tables as the cached tables of each model it
    measured; None when it was measured under another setup than the one ``--device host`` uses."""
    if mode() == "shipped" or {k: profile.fingerprint.get(k, "") for k in KEY_FIELDS} != setup(shipped):
        return None
    path = cache_path(shipped)
    host = _as_host(profile, shipped)
    _store(replace(host, layers=MappingProxyType({}), models=MappingProxyType({})), path)
    for sha256, measurement in profile.models.items():
        _store(replace(host, models=MappingProxyType({sha256: measurement})), path.with_suffix(f".{sha256[:16]}.toml"))
    return path


def _cached(path: Path, expected: dict[str, str]) -> DeviceProfile | None:
    if not path.is_file():
        return None
    try:
        profile = load_profile(path)
    except InputError as exc:
        logger.warning("the cached host profile %s is unreadable (%s): measuring this machine again", path, exc)
        return None
    found = {k: profile.fingerprint.get(k, "") for k in KEY_FIELDS}
    if found != expected:
        differ = ", ".join(f"{k} {found[k]!r} here {expected[k]!r}" for k in KEY_FIELDS if found[k] != expected[k])
        logger.warning(
            "the cached host profile %s was measured under another setup (%s): not used, measuring again", path, differ
        )
        return None
    return profile


def _as_host(measured: DeviceProfile, shipped: DeviceProfile) -> DeviceProfile:
    description = "This machine, measured by edgeprune on first use of --device host (see [measured.fingerprint])"
    return replace(measured, name=shipped.name, description=description)


def _store(profile: DeviceProfile, path: Path) -> DeviceProfile:
    """Write the profile atomically (two processes measuring at once both leave a whole file); a cache that
    cannot be written is not an error: the measurement is used for this run only."""
    from edgeprune.hardware.profile_toml import save_profile

    header = (
        "This machine's device profile, measured by edgeprune for --device host and cached here.\n"
        "Delete the file to measure again; EDGEPRUNE_HOST_PROFILE=shipped uses the shipped example instead."
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_profile(profile, path, header=header)
    except OSError as exc:
        logger.warning(
            "cannot write the host profile cache %s (%s): using this measurement for this run only", path, exc
        )
        return replace(profile, source="")
    return replace(profile, source=str(path), layers=MappingProxyType(dict(profile.layers)))


def _is_cache(profile: DeviceProfile) -> bool:
    """Whether ``profile`` is this machine's cached roofline (not a model's file, not a user's)."""
    source = Path(profile.source) if profile.source else None
    if source is None or source.parent != cache_dir():
        return False
    return source.name.startswith("host-") and source.name.count(".") == 1
