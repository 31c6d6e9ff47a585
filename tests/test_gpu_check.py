"""benchmarks/gpu_check.py: on a machine where a GPU provider does not load it refuses in one line and writes
nothing; its CPU half (every step on the CPU provider) runs here and writes the page and the profile."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_check  # noqa: E402

from edgeprune.hardware import load_profile  # noqa: E402
from edgeprune.runtime import provider_works  # noqa: E402


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_a_provider_that_does_not_load_is_refused_in_one_line(provider, tmp_path, capsys):
    if provider_works(gpu_check.NAMES[provider]):
        pytest.skip(f"the {provider} provider works here: the check would run")
    out, profile = tmp_path / "gpu.md", tmp_path / "gpu.toml"
    code = gpu_check.main(["--providers", provider, "--out", str(out), "--profile-out", str(profile)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert (
        err[0].startswith(f"gpu_check: the {provider} execution provider does not load: ")
        and "nothing was written" in err[0]
    )
    assert not out.exists() and not profile.exists()


def test_the_cpu_half_needs_its_own_outputs(capsys):
    assert gpu_check.main(["--providers", "cpu"]) == 2
    assert "needs --out and --profile-out" in capsys.readouterr().err


def test_an_unknown_provider_is_refused(capsys):
    assert gpu_check.main(["--providers", "rocm", "--out", "x", "--profile-out", "y"]) == 2
    assert "unknown provider rocm" in capsys.readouterr().err


def test_the_cpu_half_runs_every_step(tmp_path, capsys):
    out, profile = tmp_path / "gpu.md", tmp_path / "gpu.toml"
    model = Path(__file__).resolve().parents[1] / "edgeprune" / "reference" / "resnet20_fmnist.onnx"
    args = [
        "--providers",
        "cpu",
        "--models",
        str(model),
        "--images",
        "8",
        "--rounds",
        "3",
        "--points",
        "2",
        "--seconds-per-point",
        "0.005",
        "--out",
        str(out),
        "--profile-out",
        str(profile),
    ]
    assert gpu_check.main(args) == 0
    text = out.read_text(encoding="utf-8")
    assert "| resnet20_fmnist | cpu | 0.0e+00 | 0.0e+00 | yes |" in text  # the same provider: the same sums
    rows = [line for line in text.splitlines() if line.startswith("| resnet20_fmnist | cpu | fp32 |")]
    assert [row.split("|")[4].strip() for row in rows] == ["8", "1"]  # aligned and not
    measured = load_profile(profile)
    assert measured.provider == "cpu" and measured.layers and measured.models
