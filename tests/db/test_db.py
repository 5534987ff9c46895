"""Database migrations on both supported databases, through the code path the server and CLI use."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from typer.testing import CliRunner

from mlgate.cli.main import app
from mlgate.db.engine import Database
from mlgate.db.migrate import current_revision, head_revision, upgrade
from mlgate.db.tables.meta import ServerMeta


def test_upgrade_creates_the_schema_and_is_idempotent(empty_database_url: str) -> None:
    database_url = empty_database_url
    assert asyncio.run(current_revision(database_url)) is None
    upgrade(database_url)
    assert asyncio.run(current_revision(database_url)) == head_revision()
    upgrade(database_url)  # a second run changes nothing and does not fail

    async def round_trip() -> str:
        db = Database(database_url)
        try:
            async with db.session() as session:
                session.add(ServerMeta(key="created_by", value="test"))
            async with db.session() as session:
                row = (await session.execute(select(ServerMeta))).scalar_one()
                assert row.updated_at.tzinfo is not None
                return row.value
        finally:
            await db.dispose()

    assert asyncio.run(round_trip()) == "test"


def test_cli_db_upgrade(empty_database_url: str) -> None:
    database_url = empty_database_url
    result = CliRunner().invoke(app, ["db", "upgrade", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    assert "(empty) ->" in result.output and str(head_revision()) in result.output


def test_a_float_column_reads_back_as_a_float_from_update_returning() -> None:
    # SQLite's UPDATE ... RETURNING gives the value before the column's affinity: a stored 1.0 came back as the
    # integer 1 (a job's final progress showed as 1 in its event stream).
    import sqlalchemy as sa

    from mlgate.db.base import FloatValue

    engine = sa.create_engine("sqlite://")
    metadata = sa.MetaData()
    table = sa.Table("t", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("p", FloatValue))
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, p=None))
        [(value,)] = connection.execute(sa.update(table).where(table.c.id == 1).values(p=1.0).returning(table.c.p))
        assert isinstance(value, float) and value == 1.0
        assert connection.execute(sa.select(table.c.p)).scalar_one() == 1.0
