"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder per test session where the corpus exports are cached (see ``tests/corpus.py``)."""
    return tmp_path_factory.mktemp("corpus")
