"""Shared fixtures: the example models built once from real data, and the real app over real HTTP (ASGI).

Anonymous access is off by default in mlgate. The default test app opens it for every model
(``anonymous_models=["*"]``), so that the protocol tests stay about the protocols; they still pass through
authentication, authorization (as anonymous callers) and the anonymous tier's rate limits. Tests of security
itself (tests/test_security_*.py) pass their own settings, where anonymous access is closed.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlgate.app import create_app
from mlgate.examples import build_examples
from mlgate.logs import configure_logging
from mlgate.settings import Settings
from tests.services import database_url, postgres_url, redis_url, sqlite_url  # noqa: F401 - fixtures

# Route structlog through the standard library, as `mlgate serve` does, so caplog sees every line.
configure_logging("info", "json")


@pytest.fixture(scope="session")
def examples_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository with breast-cancer and digits, trained once per test session."""
    root = tmp_path_factory.mktemp("examples")
    build_examples(root)
    return root


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def serve_app(repository: Path, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with its lifespan run, behind an httpx client speaking HTTP to it in-process."""
    if "data_dir" not in settings:
        settings["data_dir"] = Path(tempfile.mkdtemp(prefix="mlgate-data-"))
    settings.setdefault("anonymous_models", ["*"])
    app = create_app(Settings(model_repository=repository, **settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mlgate.test") as client:
            yield client


ClientFactory = Callable[..., Any]


@pytest.fixture
async def client(examples_repo: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(examples_repo) as c:
        yield c


@pytest.fixture
def app_client() -> ClientFactory:
    """``async with app_client(repo, **settings) as client``: an app over another repository or settings."""
    return serve_app
