"""Protocol fixtures: one app per test module for the modules whose tests only read.

The V2, V1 and bad-input tests send requests (good and bad) to the example models and change nothing a later
request could see: every bad input is refused before it reaches a model, and each test checks the server
still serves afterwards. They share one app per module (``client``, overriding the per-test one of
tests/conftest.py), which saves an app start-up (~1 s) per test. Tests that change state (keys, users, rate
limits) start their own app with ``app_client`` or ``secure_app``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import serve_app


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module scope, so that the module-scoped ``client`` and the tests run on one event loop."""
    return "asyncio"


@pytest.fixture(scope="module")
async def client(examples_repo: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(examples_repo) as c:
        yield c
