"""What a measurement was taken under: a latency table is only evidence for the same software and hardware."""

from __future__ import annotations

import datetime
import platform
import shutil
import subprocess
from pathlib import Path


def fingerprint(provider: str, threads: int) -> dict[str, str]:
    """Runtime versions, provider, threads, power mode and CPU/GPU names; empty strings where unknown."""
    import onnxruntime

    return {
        "onnxruntime": onnxruntime.__version__,
        "tensorrt": _tensorrt_version(),
        "jetpack": _first_line(Path("/etc/nv_tegra_release")),
        "provider": provider,
        "threads": str(threads),
        "power_mode": _command(["nvpmodel", "-q"]),
        "cpu": cpu_name(),
        "gpu": _gpu_name(),
        "platform": platform.platform(),
        "measured_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_alignment(cpuinfo: str | None = None) -> tuple[int, str] | None:
    """The channel block of ONNX Runtime's NCHWc convolutions on this CPU, from its instruction sets, and
    why: 16 with AVX-512F, 8 with AVX2 (x86 on Linux, from /proc/cpuinfo, or ``cpuinfo``'s text); None
    where that is unknown."""
    text = cpuinfo
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    flags = next((set(line.split(":", 1)[1].split()) for line in text.splitlines() if line.startswith("flags")), set())
    if "avx512f" in flags:
        return 16, "AVX-512F: ONNX Runtime's NCHWc convolutions block channels by 16"
    if "avx2" in flags:
        return 8, "AVX2 (no AVX-512): ONNX Runtime's NCHWc convolutions block channels by 8"
    return None


def _tensorrt_version() -> str:
    try:
        import tensorrt

        return str(tensorrt.__version__)
    except Exception:  # absent, or present but broken: either way not usable for this measurement
        return ""


def _gpu_name() -> str:
    jetson = _first_line(Path("/proc/device-tree/model")).rstrip("\x00")
    if "jetson" in jetson.lower():
        return jetson
    return _command(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])


def _first_line(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[0].strip()
    except (OSError, IndexError):
        return ""


def _command(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return ""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return " ".join(done.stdout.split())[:200] if done.returncode == 0 else ""
