"""The Alembic migrations create exactly the tables the SQLAlchemy models declare, on both databases."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

import mlgate.db.tables  # noqa: F401 - registers every table
from mlgate.db.base import Base
from mlgate.db.migrate import upgrade


def test_migrations_match_the_models(empty_database_url: str) -> None:
    database_url = empty_database_url
    upgrade(database_url)

    async def diff() -> list[object]:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata))
        finally:
            await engine.dispose()

    assert asyncio.run(diff()) == []
