"""Alembic migrations, run from code (no alembic.ini): ``upgrade(url)`` brings a database to the head.

The scripts live in ``mlgate/db/migrations/versions``. ``mlgate db upgrade`` and the server's start-up (when
``database_auto_upgrade`` is on) call ``upgrade``; it is synchronous, so call it off the event loop.
Migrations are written expand-then-contract (docs/operations.md): each release's schema still serves the
release before it, so replicas of two releases can share one database during a rolling upgrade. A schema
newer than this release knows (a later release migrated it) is refused with ``SchemaTooNew``: the server
never runs against, nor tries to downgrade, a schema it does not know.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from mlgate.db.engine import async_url, ensure_sqlite_dir
from mlgate.errors import DatabaseUnavailable

__all__ = ["SchemaTooNew", "alembic_config", "check_schema", "current_revision", "head_revision",
           "known_revisions", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaTooNew(RuntimeError):
    """The database's schema revision is unknown to this release: a newer release migrated it."""

    def __init__(self, shown_url: str, revision: str, head: str | None) -> None:
        self.revision = revision
        super().__init__(
            f"database {shown_url} is at schema revision '{revision}', which this mlgate release does not know "
            f"(its newest is '{head}'): a newer release has migrated it. Run that release (or newer), or restore "
            "the backup taken before that upgrade; mlgate never downgrades a schema by itself.")


def alembic_config(url: str) -> Config:
    """The Alembic configuration of mlgate's migrations against the database at ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", async_url(url).render_as_string(hide_password=False))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` (default: the newest); a SQLite file's folder is created.

    Raises SchemaTooNew (see the module), and DatabaseUnavailable when the database cannot be opened or
    reached (the driver's reason in the message)."""
    try:
        ensure_sqlite_dir(async_url(url))
        check_schema(url)
        command.upgrade(alembic_config(url), revision)
    except (DBAPIError, OSError) as exc:
        raise _unavailable(url, exc) from exc


def _unavailable(url: str, exc: DBAPIError | OSError) -> DatabaseUnavailable:
    if isinstance(exc, DBAPIError):
        reason = str(exc.orig)
    elif isinstance(exc, ConnectionRefusedError):
        reason = f"connection refused ({exc})"
    else:
        reason = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
    shown = async_url(url).render_as_string(hide_password=True)
    return DatabaseUnavailable(f"cannot open the database {shown}: {reason}")


def head_revision() -> str | None:
    """The newest revision this release's migrations define."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def known_revisions() -> set[str]:
    """Every revision this release's migrations define."""
    return {script.revision for script in ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()}


def check_schema(url: str) -> str | None:
    """The database's revision (None: never migrated); raises SchemaTooNew when this release does not know it.

    Synchronous (it runs its own event loop): call it off the event loop, like ``upgrade``.
    """
    current = asyncio.run(current_revision(url))
    if current is not None and current not in known_revisions():
        raise SchemaTooNew(async_url(url).render_as_string(hide_password=True), current, head_revision())
    return current


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
