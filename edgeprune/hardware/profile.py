"""A device as data: the versioned TOML schema of a device profile, read and validated in one place.

A profile says how the device runs a model (execution provider, precision), which channel counts its fast
kernels want, its roofline figures with their public sources, and optionally latency tables measured on it
with the fingerprint they were measured under. Every error names the file and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import tomllib

from edgeprune.errors import InputError

FORMAT = "edgeprune-device"
VERSION = 1
PROVIDERS = ("cpu", "cuda", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
FINGERPRINT_KEYS = (
    "onnxruntime",
    "tensorrt",
    "jetpack",
    "provider",
    "threads",
    "power_mode",
    "cpu",
    "gpu",
    "platform",
    "measured_at",
)


@dataclass(frozen=True)
class Roofline:
    """Peak FLOP/s per precision and memory bandwidth (bytes/s); ``efficiency`` is the fraction of peak
    real kernels reach, ``layer_overhead_us`` the fixed cost of launching one layer."""

    peak_flops: Mapping[str, float]
    memory_bandwidth: float
    efficiency: float = 1.0
    layer_overhead_us: float = 0.0
    sources: tuple[str, ...] = ()
    notes: str = ""


@dataclass(frozen=True)
class LayerTable:
    """Measured latency (ms) of one layer shape at sampled channel counts: ``ms[i][j]`` at ``cin[i]``,
    ``cout[j]``. A depthwise layer has one axis (``cout`` equals ``cin``) and ``ms`` has one column."""

    key: str
    cin: tuple[int, ...]
    cout: tuple[int, ...]
    ms: tuple[tuple[float, ...], ...]
    depthwise: bool = False


@dataclass(frozen=True)
class ModelMeasurement:
    """The whole model measured on the device; the latency model corrects its sum of layers by it."""

    sha256: str
    name: str
    ms: float
    layers_ms: float = 0.0  # the sum of its layer tables at full size when measured (0: unknown)
    input_shape: str = ""  # the input size it was measured at, e.g. x=?,3,640,640 (?: a dynamic batch, run as 1)
    # a second point: the model with every prunable group cut to half (on the alignment step), measured whole,
    # and the sum of its layer tables at those counts (0: not measured); with both points the correction is
    # affine, so the part of the time that no channel cut shrinks (run overhead, element-wise nodes, layout
    # changes) stays fixed in the prediction instead of being scaled with the layers
    reduced_ms: float = 0.0
    reduced_layers_ms: float = 0.0


@dataclass(frozen=True)
class DeviceProfile:
    """A target device as data (devices/*.toml, or `edgeprune profile`'s output): its execution provider
    and precision, the channel alignment its fast kernels want, roofline figures, and latency tables
    measured on it with the setup they were measured under. The latency model reads nothing else."""

    name: str
    description: str
    provider: str
    precision: str
    alignment: int
    roofline: Roofline
    threads: int = 0
    alignment_notes: str = ""
    fingerprint: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    layers: Mapping[str, LayerTable] = field(default_factory=lambda: MappingProxyType({}))
    models: Mapping[str, ModelMeasurement] = field(default_factory=lambda: MappingProxyType({}))
    source: str = ""
    measured_overhead_us: float | None = None  # one more layer inside a model, timed on the device

    @property
    def peak_flops(self) -> float:
        return self.roofline.peak_flops[self.precision]

    @property
    def measured(self) -> bool:
        return bool(self.layers or self.models or self.measured_overhead_us is not None)

    @property
    def layer_overhead_us(self) -> float:
        """The fixed cost of one layer: measured on the device where profiled, else the roofline's estimate."""
        return self.roofline.layer_overhead_us if self.measured_overhead_us is None else self.measured_overhead_us

    @property
    def overhead_source(self) -> str:
        return "measured on the device" if self.measured_overhead_us is not None else "roofline estimate"


def load_profile(path: str | Path) -> DeviceProfile:
    """Read and validate a profile file; any problem is an `InputError` naming the file and the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"device profile not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a valid TOML device profile ({exc})") from None
    except OSError as exc:
        raise InputError(f"cannot read device profile {path} ({exc.strerror or exc})") from None
    return parse_profile(data, str(path))


def parse_profile(data: Mapping[str, Any], source: str) -> DeviceProfile:
    r = _Reader(data, source)
    if data.get("format") != FORMAT:
        raise InputError(f"{source}: 'format' must be \"{FORMAT}\" (is this an edgeprune device profile?)")
    version = r.get("version", int)
    if version != VERSION:
        raise InputError(
            f"{source}: profile version {version} is not supported; this edgeprune reads version {VERSION}"
        )
    provider = r.choice("runtime.provider", PROVIDERS)
    precision = r.choice("runtime.precision", PRECISIONS)
    roofline = Roofline(
        peak_flops=MappingProxyType(
            {p: r.positive(f"roofline.peak_flops.{p}") for p in r.table("roofline.peak_flops")}
        ),
        memory_bandwidth=r.positive("roofline.memory_bandwidth"),
        efficiency=r.positive("roofline.efficiency", 1.0),
        layer_overhead_us=r.non_negative("roofline.layer_overhead_us", 0.0),
        sources=tuple(r.get("roofline.sources", list, [])),
        notes=r.get("roofline.notes", str, ""),
    )
    if precision not in roofline.peak_flops:
        raise InputError(f"{source}: roofline.peak_flops has no figure for the device's precision '{precision}'")
    if roofline.efficiency > 1.0:
        raise InputError(f"{source}: roofline.efficiency is a fraction of peak in (0, 1], got {roofline.efficiency}")
    fingerprint = {k: str(v) for k, v in r.table("measured.fingerprint", {}).items()}
    layers = tuple(r.get("measured.layers", list, []))
    models = tuple(r.get("measured.models", list, []))
    measured = r.table("measured", {})
    overhead = r.non_negative("measured.layer_overhead_us") if "layer_overhead_us" in measured else None
    if (layers or models or overhead is not None) and fingerprint.get("provider") != provider:
        raise InputError(
            f"{source}: measured.fingerprint.provider is '{fingerprint.get('provider', '')}' but the device runs "
            f"'{provider}': tables measured with another provider do not predict this device; profile it again"
        )
    alignment = r.get("alignment.channels", int)
    if alignment < 1:
        raise InputError(f"{source}: alignment.channels must be a positive channel count, got {alignment}")
    return DeviceProfile(
        name=r.get("name", str),
        description=r.get("description", str, ""),
        provider=provider,
        precision=precision,
        alignment=alignment,
        alignment_notes=r.get("alignment.notes", str, ""),
        roofline=roofline,
        threads=r.get("runtime.threads", int, 0),
        fingerprint=MappingProxyType(fingerprint),
        layers=MappingProxyType({t.key: t for t in (_layer(x, i, source) for i, x in enumerate(layers))}),
        models=MappingProxyType({m.sha256: m for m in (_model(x, i, source) for i, x in enumerate(models))}),
        source=source,
        measured_overhead_us=overhead,
    )


def _layer(raw: Any, index: int, source: str) -> LayerTable:
    r = _Reader(raw, source, f"measured.layers[{index}].")
    cin = tuple(r.get("cin", list))
    cout = tuple(r.get("cout", list))
    ms = tuple(tuple(row) for row in r.get("ms", list))
    depthwise = r.get("depthwise", bool, False)
    where = f"{source}: measured.layers[{index}]"
    counts_ok = all(isinstance(c, int) and c > 0 for c in cin + cout)
    increasing = all(a < b for a, b in zip(cin, cin[1:])) and all(a < b for a, b in zip(cout, cout[1:]))
    if not (cin and cout and counts_ok and increasing):
        raise InputError(f"{where}: cin and cout must be non-empty lists of increasing positive channel counts")
    width = 1 if depthwise else len(cout)
    if len(ms) != len(cin) or any(len(row) != width for row in ms):
        raise InputError(f"{where}: ms must have {len(cin)} rows of {width} values (one per cin, cout)")
    if not all(isinstance(v, (int, float)) and v > 0 for row in ms for v in row):
        raise InputError(f"{where}: ms values must be positive milliseconds")
    return LayerTable(r.get("key", str), cin, cout, tuple(tuple(float(v) for v in row) for row in ms), depthwise)


def _model(raw: Any, index: int, source: str) -> ModelMeasurement:
    r = _Reader(raw, source, f"measured.models[{index}].")
    return ModelMeasurement(
        r.get("sha256", str),
        r.get("name", str, ""),
        r.positive("ms"),
        r.non_negative("layers_ms", 0.0),
        r.get("input_shape", str, ""),
        r.non_negative("reduced_ms", 0.0),
        r.non_negative("reduced_layers_ms", 0.0),
    )


_MISSING = object()


class _Reader:
    """Typed access to nested keys (``a.b.c``) with errors that name the file and the full key."""

    def __init__(self, data: Any, source: str, prefix: str = "") -> None:
        if not isinstance(data, Mapping):
            raise InputError(f"{source}: {prefix.rstrip('.') or 'the file'} must be a table")
        self.data, self.source, self.prefix = data, source, prefix

    def get(self, key: str, kind: type, default: Any = _MISSING) -> Any:
        value: Any = self.data
        for part in key.split("."):
            value = value.get(part, _MISSING) if isinstance(value, Mapping) else _MISSING
            if value is _MISSING:
                break
        if value is _MISSING:
            if default is _MISSING:
                raise InputError(f"{self.source}: missing key '{self.prefix}{key}'")
            return default
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InputError(f"{self.source}: '{self.prefix}{key}' must be {_KIND_NAMES[kind]}, got {value!r}")
        return value

    def table(self, key: str, default: Any = _MISSING) -> Mapping[str, Any]:
        return self.get(key, dict, default)

    def choice(self, key: str, options: tuple[str, ...]) -> str:
        value = self.get(key, str)
        if value not in options:
            raise InputError(f"{self.source}: '{self.prefix}{key}' must be one of {', '.join(options)}, got '{value}'")
        return value

    def positive(self, key: str, default: Any = _MISSING) -> float:
        value = self.get(key, float, default)
        if value <= 0:
            raise InputError(f"{self.source}: '{self.prefix}{key}' must be positive, got {value}")
        return value

    def non_negative(self, key: str, default: Any = _MISSING) -> float:
        value = self.get(key, float, default)
        if value < 0:
            raise InputError(f"{self.source}: '{self.prefix}{key}' must not be negative, got {value}")
        return value


_KIND_NAMES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}
