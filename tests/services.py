"""Real PostgreSQL and Redis for the tests that need them.

A test asks for ``postgres_url`` (a database of its own, migrated to the newest revision, dropped afterwards, so
tests can run in parallel), ``empty_postgres_url`` (the same, never migrated: for the tests of the migrations
themselves) or ``redis_url`` (a Redis logical database of its own, reserved by a lock, flushed before and
after). When the service is not
reachable the test is skipped with the reason, unless MLGATE_REQUIRE_SERVICES=1 (CI), where it fails.

Migrating a database with Alembic takes about half a second, so no test pays it: each test process migrates
one template per database once (``CREATE DATABASE ... TEMPLATE`` on PostgreSQL, a file copied on SQLite) and
every migrated database a test gets is a copy of it. ``MIGRATED_URLS`` names those copies, so the test apps
skip their own (no-op) upgrade at start-up; tests/db checks the upgrade itself on empty databases.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any
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


MIGRATED_URLS: set[str] = set()
"""Database URLs handed out already migrated to the head (copies of a template); see the module docstring."""


def _pg_url(name: str) -> str:
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def _create_pg_database(name: str, template: str | None = None) -> None:
    """``CREATE DATABASE name [TEMPLATE template]``; skips (or fails under CI) when PostgreSQL is unreachable."""
    sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
    try:
        asyncio.run(_admin(sql))
    except (OSError, ImportError) as exc:
        unavailable(f"PostgreSQL at {PG_HOST}:{PG_PORT}", exc)
    except Exception as exc:  # noqa: BLE001 - asyncpg's own errors: server up but refusing us
        unavailable(f"PostgreSQL at {PG_HOST}:{PG_PORT}", exc)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """The name of a PostgreSQL database migrated to the head once per test process; copied, never used."""
    from mlgate.db.migrate import upgrade

    name = f"mlgate_template_{uuid.uuid4().hex[:12]}"
    _create_pg_database(name)
    try:
        upgrade(_pg_url(name))
        yield name
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _postgres_database(template: str | None) -> Iterator[str]:
    name = f"mlgate_test_{uuid.uuid4().hex[:12]}"
    _create_pg_database(name, template)
    url = _pg_url(name)
    if template:
        MIGRATED_URLS.add(url)
    try:
        yield url
    finally:
        MIGRATED_URLS.discard(url)
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    """``postgresql+asyncpg://...`` of a new database at the newest revision, dropped after the test."""
    yield from _postgres_database(postgres_template)


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """``postgresql+asyncpg://...`` of a new empty (never migrated) database, dropped after the test."""
    yield from _postgres_database(None)


def sqlite_template(first_admin: bool = False) -> Path:
    """The path of ``_sqlite_template``, made in a thread of its own (Alembic and the store run event loops)."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(_sqlite_template, first_admin).result()


@cache
def _sqlite_template(first_admin: bool) -> Path:
    """A SQLite file migrated to the head once per test process (with the tests' first admin if asked).

    The first admin (tests/processes.py's ADMIN_USERNAME) is created by the same function the app's start-up
    calls, so an app given a copy finds them and spends no argon2 hash on them.
    """
    from mlgate.db.migrate import upgrade

    directory = Path(tempfile.mkdtemp(prefix="mlgate-template-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = directory / "mlgate.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    if first_admin:
        asyncio.run(_create_first_admin(url, directory))
    return path


async def _create_first_admin(url: str, data_dir: Path) -> None:
    from mlgate.auth.service import ensure_first_admin
    from mlgate.auth.store import AuthStore
    from mlgate.db.engine import Database
    from mlgate.settings import Settings
    from tests.processes import ADMIN_PASSWORD, ADMIN_USERNAME

    database = Database(url)
    try:
        settings = Settings(data_dir=data_dir, admin_username=ADMIN_USERNAME, admin_password=ADMIN_PASSWORD)
        await ensure_first_admin(settings, AuthStore(database))
    finally:
        await database.dispose()


def migrated_sqlite(path: Path, first_admin: bool = False) -> str:
    """Copy the migrated template to ``path`` (a SQLite file); returns its URL, recorded in MIGRATED_URLS."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sqlite_template(first_admin), path)
    url = f"sqlite+aiosqlite:///{path}"
    MIGRATED_URLS.add(url)
    return url


def prepare_database(settings: dict[str, Any]) -> None:
    """Give the test app of ``settings`` (keyword arguments of Settings, changed in place) a migrated database.

    Without a ``database_url``, the app's SQLite file in ``data_dir`` (a new temporary folder if not given) starts
    as a copy of the template, with the tests' first admin when the settings name them; an app whose database
    is such a copy does not run the (no-op) upgrade at start-up unless the test asks for it.
    """
    from tests.processes import ADMIN_PASSWORD, ADMIN_USERNAME

    if settings.get("data_dir") is None:
        settings["data_dir"] = Path(tempfile.mkdtemp(prefix="mlgate-data-"))
    url = settings.get("database_url")
    if url is None:
        path = Path(settings["data_dir"]) / "mlgate.db"
        if path.exists():
            return
        first_admin = (settings.get("admin_username"), str(settings.get("admin_password"))) == (
            ADMIN_USERNAME, ADMIN_PASSWORD)
        url = migrated_sqlite(path, first_admin=first_admin)
    if url in MIGRATED_URLS:
        settings.setdefault("database_auto_upgrade", False)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """``sqlite+aiosqlite:///...`` of a SQLite file at the newest revision, in the test's tmp_path."""
    return migrated_sqlite(tmp_path / "mlgate.db")


@pytest.fixture
def empty_sqlite_url(tmp_path: Path) -> str:
    """``sqlite+aiosqlite:///...`` of a SQLite file that does not exist yet (never migrated)."""
    return f"sqlite+aiosqlite:///{tmp_path}/mlgate.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that uses it runs twice: on a SQLite file and on a PostgreSQL database, both migrated."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest) -> str:
    """Like ``database_url``, but never migrated: for the tests of the migrations themselves."""
    fixture = "empty_sqlite_url" if request.param == "sqlite" else "empty_postgres_url"
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
