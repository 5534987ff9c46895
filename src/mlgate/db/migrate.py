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
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from mlgate.db.engine import async_url, ensure_sqlite_dir
from mlgate.errors import DatabaseUnavailable

__all__ = ["alembic_config", "current_revision", "head_revision", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", async_url(url).render_as_string(hide_password=False))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` (default: the newest); a SQLite file's folder is created.

    Raises DatabaseUnavailable when the database cannot be opened or reached (the driver's reason in the
    message)."""
    try:
        ensure_sqlite_dir(async_url(url))
        command.upgrade(alembic_config(url), revision)
    except (DBAPIError, OSError) as exc:
        raise _unavailable(url, exc) from exc


def _unavailable(url: str, exc: DBAPIError | OSError) -> DatabaseUnavailable:
    if isinstance(exc, DBAPIError):
        reason = str(exc.orig)
    else:
        reason = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
    shown = async_url(url).render_as_string(hide_password=True)
    return DatabaseUnavailable(f"cannot open the database {shown}: {reason}")


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def current_revision(url: str) -> str | None:
    """The revision the database is at (None for a database never migrated, or a SQLite file not made yet).

    Raises DatabaseUnavailable when the database cannot be opened or reached."""
    parsed = async_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") and not Path(
            parsed.database).exists():
        return None
    engine = create_async_engine(parsed)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    except (DBAPIError, OSError) as exc:
        raise _unavailable(url, exc) from exc
    finally:
        await engine.dispose()
