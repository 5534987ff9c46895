"""Alembic migrations, run from code (no alembic.ini): ``upgrade(url)`` brings a database to the head.

The scripts live in ``mlgate/db/migrations/versions``. ``mlgate db upgrade`` and the server's start-up (when
``database_auto_upgrade`` is on) call ``upgrade``; it is synchronous, so call it off the event loop.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from mlgate.db.engine import async_url, ensure_sqlite_dir

__all__ = ["alembic_config", "current_revision", "head_revision", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", async_url(url).render_as_string(hide_password=False))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` (default: the newest)."""
    ensure_sqlite_dir(async_url(url))
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def current_revision(url: str) -> str | None:
    """The revision the database is at (None for a database never migrated)."""
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    finally:
        await engine.dispose()
