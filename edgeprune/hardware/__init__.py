"""Devices and latency: device profiles as data, the latency model, timing, and the on-device profiler.

Light to import: onnxruntime is only loaded by the functions that time something.
"""

from edgeprune.hardware.catalog import builtin_devices, resolve_device
from edgeprune.hardware.latency import LatencyModel, LayerLatency
from edgeprune.hardware.profile import DeviceProfile, LayerTable, ModelMeasurement, Roofline, load_profile
from edgeprune.hardware.profile_toml import dumps_profile, save_profile

__all__ = [
    "DeviceProfile",
    "LatencyModel",
    "LayerLatency",
    "LayerTable",
    "ModelMeasurement",
    "Roofline",
    "builtin_devices",
    "dumps_profile",
    "load_profile",
    "resolve_device",
    "save_profile",
]
