"""Shared fixtures: the example models built once from real data, and the real app over real HTTP (ASGI).

Anonymous access is off by default in mlgate. The default test app opens it for every model
(``anonymous_models=["*"]``), so that the protocol tests stay about the protocols; they still pass through
authentication, authorization (as anonymous callers) and the anonymous tier's rate limits. Tests of security
itself (tests/test_security_*.py) pass their own settings, where anonymous access is closed.

The registry routes never serve anonymous callers, so the default test app also creates a first admin and
an API key of theirs, and its client sends that key on the registry routes (``/api/v1`` itself,
``/api/v1/models...``, ``/api/v1/predictions...``, ``/v2/repository...``) unless a request carries its own
``Authorization`` header; every other request stays anonymous. tests/test_registry_security.py tests the
registry's security without that help.
"""

from __future__ import annotations

import functools
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from mlgate.app import create_app
from mlgate.auth import Actor, passwords
from mlgate.logs import configure_logging
from mlgate.model.examples import build_examples, missing_requirement
from mlgate.settings import Settings
from tests.processes import ADMIN_PASSWORD, ADMIN_USERNAME, serve_process
from tests.services import (  # noqa: F401 - fixtures
    database_url,
    empty_database_url,
    empty_postgres_url,
    empty_sqlite_url,
    postgres_template,
    postgres_url,
    prepare_database,
    redis_url,
    sqlite_url,
)

# No test app or `mlgate serve` process binds the default gRPC port (8001), which parallel runs would share: a
# test of gRPC passes its own free port (tests/protocols/grpc/).
os.environ.setdefault("MLGATE_GRPC_PORT", "0")

# Route structlog through the standard library, as `mlgate serve` does, so caplog sees every line.
configure_logging("info", "json")


XDIST_GROUPS = {
    "tests/protocols/test_openai.py": "embeddings",
    "tests/runtimes/test_sentence_transformers.py": "embeddings",
    "tests/runtimes/test_st_onnx.py": "embeddings",
}
"""Test modules that must share one xdist worker (these three build and load all-MiniLM-L6-v2 once there)."""


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under pytest-xdist (pyproject's addopts: ``-n auto``) each test module runs on one worker, and the
    modules of one ``XDIST_GROUPS`` group on the same worker.

    Many modules start a server, a browser or an app once per module; keeping a module on one worker starts it
    once. (``--dist loadgroup`` with ``xdist_group`` marks would say the same, but pytest-xdist 3.8 renames the
    test ids through an attribute pytest 9 no longer reads, so it schedules test by test.)
    """
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return XDIST_GROUPS.get(module, module)

    return ModuleScheduling(config, log)


class OncePerPasswordHash(PasswordHash):
    """argon2id as shipped, but each distinct password is hashed once per test process.

    An argon2 hash costs ~0.6 s here on purpose, and the suite creates dozens of users with the same few test
    passwords. Every hash is still a real argon2id PHC string and every sign-in still verifies against it;
    only the salt is shared between users of the same password, which no test observes.
    """

    @functools.cache  # noqa: B019 - one instance, alive for the whole session
    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        return super().hash(password, salt=salt)


@pytest.fixture(scope="session", autouse=True)
def _argon2_once_per_password() -> Iterator[None]:
    hasher = OncePerPasswordHash((Argon2Hasher(),))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "_hasher", lambda: hasher)
        yield


@pytest.fixture(scope="session")
def examples_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository with breast-cancer and digits, trained once per test session.

    Built without the demo's ``[access]`` table, so the models are closed to anonymous callers like any
    model of one's own; the security tests rely on that (test_examples checks the open demo).
    """
    root = tmp_path_factory.mktemp("examples")
    build_examples(root, names=["breast-cancer", "digits"], open_demo=False)
    return root


def require_embeddings() -> None:
    """Skip the calling test when the embeddings extra is not installed; fail instead under CI.

    ``MLGATE_REQUIRE_SERVICES=1`` (set by .ci/run) turns the skip into a failure, so CI cannot pass by
    silently leaving out the embeddings tests.
    """
    reason = missing_requirement("minilm")
    if reason is None:
        return
    if os.environ.get("MLGATE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"MLGATE_REQUIRE_SERVICES=1 but minilm {reason}")
    pytest.skip(f"minilm {reason}")


@pytest.fixture(scope="session")
def embeddings_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository with minilm (sentence embeddings) and breast-cancer, built once per session."""
    require_embeddings()
    root = tmp_path_factory.mktemp("embeddings")
    build_examples(root, names=["minilm", "breast-cancer"], open_demo=False)
    return root


@pytest.fixture(scope="session")
def embeddings_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data directory (database, token key) of ``embeddings_server``."""
    return tmp_path_factory.mktemp("embeddings-data")


@pytest.fixture(scope="session")
def embeddings_server(embeddings_repo: Path, embeddings_data_dir: Path,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlgate serve` process over ``embeddings_repo``; yields ``host:port``."""
    log_path = tmp_path_factory.mktemp("serve-embeddings") / "serve.log"
    with serve_process(embeddings_repo, log_path, {"MLGATE_DATA_DIR": str(embeddings_data_dir)}) as url:
        yield url


@pytest.fixture(scope="session")
def embeddings_key(embeddings_data_dir: Path) -> str:
    """An API key of ``embeddings_server``'s database, made with the CLI (the openai SDK always sends one)."""
    from typer.testing import CliRunner

    from mlgate.cli.main import app as cli

    runner = CliRunner(env={"MLGATE_DATA_DIR": str(embeddings_data_dir)})
    made = runner.invoke(cli, ["users", "create", "sdk", "--password-stdin"], input="sdk password\n")
    assert made.exit_code == 0, made.output
    key = runner.invoke(cli, ["keys", "create", "--user", "sdk", "--name", "openai sdk", "--plain"])
    assert key.exit_code == 0, key.output
    return key.output.strip()


@pytest.fixture(scope="session")
def sentence_transformer(embeddings_repo: Path) -> Any:
    """all-MiniLM-L6-v2 loaded in this process by sentence-transformers itself, the reference answers."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(embeddings_repo / "minilm" / "model"), device="cpu", local_files_only=True)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


REGISTRY_PATH = re.compile(r"^/api/v\d+(?:$|/models|/predictions)|^/v2/repository/")


class RegistryAuth(httpx.Auth):
    """Sends ``Authorization: Bearer <key>`` on registry routes, unless the request has its own."""

    def __init__(self, key: str) -> None:
        self.key = key

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        if "authorization" not in request.headers and REGISTRY_PATH.match(request.url.path):
            request.headers["Authorization"] = f"Bearer {self.key}"
        yield request


@asynccontextmanager
async def serve_app(repository: Path, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with its lifespan run, behind an httpx client speaking HTTP to it in-process."""
    settings.setdefault("anonymous_models", ["*"])
    # No anonymous rate limit here: rollout and prediction-log tests send hundreds of requests. The limits
    # themselves are tested through tests/secure.py and with explicit tiers.
    settings.setdefault("rate_limit_tiers", {"anonymous": {"requests": "", "rows": ""}})
    settings.setdefault("admin_username", ADMIN_USERNAME)
    settings.setdefault("admin_password", ADMIN_PASSWORD)
    prepare_database(settings)  # a copy of a migrated template, with the first admin already made
    app = create_app(Settings(model_repository=repository, **settings))
    async with app.router.lifespan_context(app):
        key, _ = await app.state.mlgate.security.store.create_key(
            settings["admin_username"], f"tests {uuid.uuid4().hex[:8]}", actor=Actor("test", client="local"))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mlgate.test",
                                     auth=RegistryAuth(key)) as client:
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
