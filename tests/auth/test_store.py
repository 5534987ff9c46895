"""The identity tables on SQLite and PostgreSQL: migrations match the models, changes are audited, errors are ours."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

import mlgate.db.tables  # noqa: F401 - every table on Base.metadata
from mlgate.auth import Action, Actor, AuthStore, Role
from mlgate.auth.client import ClientAddressResolver
from mlgate.auth.keys import hash_key, new_key, parse_key
from mlgate.db.base import Base, utcnow
from mlgate.db.engine import Database, async_url
from mlgate.db.migrate import upgrade
from mlgate.db.tables.audit import AuditEntry, record_audit
from mlgate.errors import BadRequest, Conflict, NotFound

ACTOR = Actor("cli:tester", client="local", request_id="r-1")


def test_migrations_create_exactly_the_tables_the_models_declare(empty_database_url: str) -> None:
    database_url = empty_database_url
    upgrade(database_url)

    async def diff() -> list[object]:
        engine = create_async_engine(async_url(database_url))
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata))
        finally:
            await engine.dispose()

    assert asyncio.run(diff()) == []


def test_users_groups_keys_and_their_audit_trail(database_url: str) -> None:

    async def scenario() -> None:
        database = Database(database_url)
        store = AuthStore(database, tiers=["default", "gold"])
        try:
            await store.create_group("team", ["churn-*"], actor=ACTOR)
            user = await store.create_user("ann", "long enough", Role.DEPLOYER, ["team"], actor=ACTOR)
            assert user.groups == ("team",) and user.group_models == ("churn-*",)
            assert user.role is Role.DEPLOYER
            with pytest.raises(Conflict):
                await store.create_user("ann", "long enough", actor=ACTOR)
            with pytest.raises(BadRequest):
                await store.create_user("bad name!", "long enough", actor=ACTOR)
            with pytest.raises(BadRequest):
                await store.create_user("ben", "short", actor=ACTOR)
            with pytest.raises(BadRequest):
                await store.create_user("ben", "long enough", groups=["nope"], actor=ACTOR)
            assert await store.check_password("ann", "long enough") is not None
            assert await store.check_password("ann", "wrong password") is None
            key, info = await store.create_key("ann", "ci", models=["churn-1"], actions=[Action.DEPLOY],
                                               expires_at=utcnow() + timedelta(days=1), tier="gold", actor=ACTOR)
            assert parse_key(key) == info.prefix and info.actions == (Action.DEPLOY,)
            record = await store.key_record(info.prefix)
            assert record is not None and record.secret_hash == hash_key(key) and record.user.username == "ann"
            for bad in ({"models": ["a/b"]}, {"actions": [Action.ADMIN]}, {"tier": "platinum"},
                        {"expires_at": utcnow() - timedelta(seconds=1)}):
                with pytest.raises(BadRequest):
                    await store.create_key("ann", "bad", actor=ACTOR, **bad)  # type: ignore[arg-type]
            with pytest.raises(NotFound):
                await store.create_key("ghost", "x", actor=ACTOR)
            await store.revoke_key(info.prefix, actor=ACTOR)
            await store.revoke_key(info.prefix, actor=ACTOR)  # idempotent, audited once
            with pytest.raises(NotFound):
                await store.revoke_key(info.prefix, actor=ACTOR, owner="someone-else")
            async with database.session() as session:
                record_audit(session, actor="user:ann", action="alias.set", target="churn@production",
                             detail={"version": "3"}, client="203.0.113.9")
            async with database.session() as session:
                entries = (await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars().all()
            assert [e.action for e in entries] == ["group.create", "user.create", "key.create", "key.revoke",
                                                   "alias.set"]
            assert entries[2].detail["models"] == ["churn-1"] and key not in str(entries[2].detail)
            assert all(e.at.tzinfo is not None for e in entries)
            assert (entries[0].actor, entries[0].client, entries[0].request_id) == ("cli:tester", "local", "r-1")
        finally:
            await database.dispose()

    asyncio.run(scenario())


def test_new_keys_are_unique_and_parse_strictly() -> None:
    made = {new_key().key for _ in range(200)}
    assert len(made) == 200
    key = next(iter(made))
    assert parse_key(key) == key[:16]
    for bad in (key + "x", key[:-1], key.upper(), " " + key, key + "\n", key.replace("_", "-", 1)):
        assert parse_key(bad) is None


def test_client_address_believes_forwarded_for_only_from_trusted_proxies() -> None:
    none = ClientAddressResolver()
    assert none.resolve("198.51.100.1", ["203.0.113.5"]) == "198.51.100.1"
    proxies = ClientAddressResolver(["10.0.0.0/8", "::1"])
    assert proxies.resolve("198.51.100.1", ["203.0.113.5"]) == "198.51.100.1"  # peer is not a proxy
    assert proxies.resolve("10.0.0.2", ["203.0.113.5"]) == "203.0.113.5"
    assert proxies.resolve("10.0.0.2", ["1.1.1.1, 203.0.113.5, 10.0.0.9"]) == "203.0.113.5"  # skips proxies only
    assert proxies.resolve("10.0.0.2", ["1.1.1.1", "203.0.113.5"]) == "203.0.113.5"  # several header lines
    assert proxies.resolve("10.0.0.2", ["garbage"]) == "10.0.0.2"
    assert proxies.resolve("::1", ["2001:db8::7"]) == "2001:db8::7"
    assert proxies.resolve("10.0.0.2", []) == "10.0.0.2"
