"""Real PostgreSQL and Redis for the tests that need them.

A test asks for ``postgres_url`` (a fresh, empty database of its own, dropped afterwards, so tests can run
in parallel) or ``redis_url`` (a Redis logical database of its own, reserved by a lock, flushed before and
after). When the service is not
reachable the test is skipped with the reason, unless MLGATE_REQUIRE_SERVICES=1 (CI), where it fails.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

PG_HOST = os.environ.get("MLGATE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("MLGATE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("MLGATE_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("MLGATE_TEST_PG_DB", "test")
REDIS_URL = os.environ.get("MLGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def services_required() -> bool:
    return os.environ.get("MLGATE_REQUIRE_SERVICES") == "1"


def unavailable(what: str, exc: BaseException) -> None:
    """Skip (or, with MLGATE_REQUIRE_SERVICES=1, fail) because ``what`` cannot be reached."""
    message = f"{what} is not reachable ({type(exc).__name__}: {exc})"
    if services_required():
        pytest.fail(message + "; MLGATE_REQUIRE_SERVICES=1 requires it")
    pytest.skip(message)


async def _admin(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """``postgresql+asyncpg://...`` of a new empty database, dropped after the test."""
    name = f"mlgate_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, ImportError) as exc:
        unavailable(f"PostgreSQL at {PG_HOST}:{PG_PORT}", exc)
    except Exception as exc:  # noqa: BLE001 - asyncpg's own errors: server up but refusing us
        unavailable(f"PostgreSQL at {PG_HOST}:{PG_PORT}", exc)
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/mlgate.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that uses it runs twice: on a SQLite file and on a fresh PostgreSQL database."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


REDIS_DATABASES = range(1, 16)
"""Logical databases handed out to tests; db 0 holds only the locks that say which db is taken."""


@pytest.fixture
def redis_url() -> Iterator[str]:
    """``redis://host:port/N``: a Redis logical database of this test's own, flushed before and after.

    A lock key in db 0 (``mlgate:test-db-lock:N``, expiring after 15 minutes) reserves the database, so test
    runs in parallel (several worktrees, one Redis) never flush each other's counters.
    """
    import redis

    parts = urlsplit(REDIS_URL)
    base = f"{parts.scheme}://{parts.netloc}"
    try:
        admin = redis.Redis.from_url(f"{base}/0", socket_connect_timeout=2, socket_timeout=5)
        admin.ping()
    except (redis.RedisError, OSError) as exc:
        unavailable(f"Redis at {parts.netloc}", exc)
    token = uuid.uuid4().hex
    deadline = time.monotonic() + 60
    db = None
    while db is None:
        db = next((n for n in REDIS_DATABASES if admin.set(f"mlgate:test-db-lock:{n}", token, nx=True, ex=900)),
                  None)
        if db is None:
            if time.monotonic() > deadline:
                pytest.fail("every Redis test database stayed taken for 60 s")
            time.sleep(0.2)
    client = redis.Redis.from_url(f"{base}/{db}")
    try:
        client.flushdb()
        yield f"{base}/{db}"
    finally:
        client.flushdb()
        client.close()
        if admin.get(f"mlgate:test-db-lock:{db}") == token.encode():
            admin.delete(f"mlgate:test-db-lock:{db}")
        admin.close()
