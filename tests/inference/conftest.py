"""Inference fixtures: the fake runtimes of tests/fakes.py registered by name, and a data plane over them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgate.inference.dataplane import DataPlane
from mlgate.inference.registry import ModelRegistry
from mlgate.runtimes import RUNTIMES
from mlgate.settings import Settings
from tests.fakes import FAKE_RUNTIMES


@pytest.fixture
def fake_runtimes(monkeypatch: pytest.MonkeyPatch) -> None:
    """``runtime = "fake-sum"`` (and the other fakes) resolve to tests/fakes.py's Runtime subclasses."""
    for name, target in FAKE_RUNTIMES.items():
        monkeypatch.setitem(RUNTIMES, name, target)


@pytest.fixture
def plane(fake_runtimes: None, tmp_path: Path) -> DataPlane:
    """A data plane over an empty registry (no engine hooks: each model runs on a thread), loaded."""
    plane = DataPlane(Settings(data_dir=tmp_path), ModelRegistry())
    plane.loaded = True
    return plane
