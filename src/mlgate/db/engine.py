"""The database connection: one async engine and session factory per server, built from settings.

``Database(url)`` accepts any SQLAlchemy URL with an async driver; ``sqlite+aiosqlite:///path`` and
``postgresql+asyncpg://user@host/db`` are the two supported and tested. Plain ``postgresql://`` and
``sqlite:///`` URLs are given their async driver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

__all__ = ["Database", "async_url", "ensure_sqlite_dir"]


def ensure_sqlite_dir(url: URL) -> None:
    """Create the folder of a SQLite database file (SQLite creates the file, not its folder)."""
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def async_url(url: str) -> URL:
    """``url`` with an async driver: postgresql -> postgresql+asyncpg, sqlite -> sqlite+aiosqlite."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        return parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    return parsed


class Database:
    """An async engine and its session factory. Close it with ``await db.dispose()``."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = async_url(url)
        ensure_sqlite_dir(self.url)
        self.engine: AsyncEngine = create_async_engine(self.url, echo=echo, pool_pre_ping=True)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is SQLite (no LISTEN/NOTIFY, one writer at a time)."""
        return self.url.get_backend_name() == "sqlite"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed when the block ends, rolled back when it raises."""
        async with self.sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: object, record: object) -> None:
    # WAL lets readers run beside the one writer; foreign keys are off by default in SQLite.
    # synchronous=NORMAL (SQLite's advice for WAL, Rails' default): a commit does not wait for fsync (4 ms of
    # the dev VM's disk, three per job), yet survives the process crashing or being killed; only an OS crash
    # or power loss may roll back the last commits (the database stays consistent).
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
