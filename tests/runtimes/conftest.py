"""Fixtures of the runtime tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """Where the test module's `mlgate serve` process (its own ``server`` fixture) writes its log."""
    return tmp_path_factory.mktemp(f"serve-{request.module.__name__.rpartition('.')[2]}") / "serve.log"
