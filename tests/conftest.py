"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder per test session where the corpus exports are cached (see ``tests/corpus.py``)."""
    return tmp_path_factory.mktemp("corpus")


@pytest.fixture(autouse=True, scope="session")
def host_alignment_of_an_avx2_cpu():
    """`--device host` aligns channels as on an AVX2 CPU (8), whatever CPU runs the suite, so plans under the
    host are the same on every machine (with AVX-512F it would be 16). Session-wide, so that module fixtures
    see it too. The CPU's own block is tested in tests/test_host_profile.py, from /proc/cpuinfo texts."""
    import edgeprune.hardware.fingerprint as fingerprint

    real = fingerprint.cpu_alignment
    pinned = (8, "AVX2 (no AVX-512): ONNX Runtime's NCHWc convolutions block channels by 8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fingerprint, "cpu_alignment", lambda cpuinfo=None: real(cpuinfo) if cpuinfo else pinned)
        yield
