"""``mlgate users``, ``groups`` and ``keys`` through Typer's runner, on the database the server would use."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from mlgate.cli import common
from mlgate.cli.main import app
from mlgate.db.engine import Database
from mlgate.db.tables.audit import AuditEntry
from mlgate.db.tables.catalog import RegistryChange


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    # The tables are as wide as the CLI's console, made once at import: under pytest-xdist a worker's console
    # could stay 80 columns whatever COLUMNS says at the test (key prefixes cut to "mlg_…"), so fix it here.
    monkeypatch.setattr(common.out, "_width", 200)
    return CliRunner(env={"MLGATE_DATA_DIR": str(tmp_path), "COLUMNS": "200"})


def _audit(tmp_path: Path) -> list[tuple[str, str, str, str | None]]:
    async def read() -> list[tuple[str, str, str, str | None]]:
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'mlgate.db'}")
        try:
            async with database.session() as session:
                rows = (await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars().all()
                return [(r.actor, r.action, r.target, r.client) for r in rows]
        finally:
            await database.dispose()

    return asyncio.run(read())


def test_help_lists_the_security_commands(run: CliRunner) -> None:
    result = run.invoke(app, ["--help"])
    for command in ("users", "groups", "keys"):
        assert command in result.output
    assert "--password-stdin" in run.invoke(app, ["users", "create", "--help"]).output


def test_users_create_prompts_twice_and_never_has_a_default(run: CliRunner, tmp_path: Path) -> None:
    mismatch = run.invoke(app, ["users", "create", "admin", "--role", "admin"],
                          input="first password\nsecond password\nfirst password\nfirst password\n")
    assert mismatch.exit_code == 0, mismatch.output
    assert "do not match" in mismatch.output.lower() and "user admin created (role admin)" in mismatch.output
    assert "first password" not in mismatch.output  # hidden input
    short = run.invoke(app, ["users", "create", "bob", "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 8 characters" in short.output
    again = run.invoke(app, ["users", "create", "admin", "--password-stdin"], input="another password\n")
    assert again.exit_code == 1 and "already exists" in again.output
    listed = run.invoke(app, ["users", "list"])
    assert "admin" in listed.output and "bob" not in listed.output
    me = f"cli:{getpass.getuser()}"
    assert _audit(tmp_path) == [(me, "user.create", "user:admin", "local")]


def test_groups_and_keys_life_cycle(run: CliRunner, tmp_path: Path) -> None:
    assert run.invoke(app, ["groups", "create", "fraud", "-m", "fraud-*", "-m", "churn"]).exit_code == 0
    assert run.invoke(app, ["users", "create", "ann", "-g", "fraud", "--password-stdin"],
                      input="ann's password\n").exit_code == 0
    assert run.invoke(app, ["users", "create", "cat", "--password-stdin"], input="cat's password\n").exit_code == 0
    added = run.invoke(app, ["groups", "add", "fraud", "cat"])
    assert added.exit_code == 0 and "cat is in group fraud" in added.output
    made = run.invoke(app, ["keys", "create", "--user", "ann", "--name", "ci", "-m", "fraud-v2", "-a", "predict",
                            "--expires-in", "30d"])
    assert made.exit_code == 0, made.output
    key = made.output.strip().splitlines()[-1]
    assert key.startswith("mlg_") and "will not be shown again" in made.output
    plain = run.invoke(app, ["keys", "create", "--user", "cat", "--name", "script", "--plain"])
    assert plain.exit_code == 0 and plain.output.count("\n") == 1 and plain.output.startswith("mlg_")
    listed = run.invoke(app, ["keys", "list"])
    assert key[:16] in listed.output and key not in listed.output and "fraud-v2" in listed.output
    assert "active" in listed.output
    assert run.invoke(app, ["keys", "list", "--user", "cat"]).output.count("mlg_") == 1
    revoked = run.invoke(app, ["keys", "revoke", key[:16]])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert "revoked" in run.invoke(app, ["keys", "list", "--user", "ann"]).output
    for args, message in ((["keys", "revoke", "mlg_000000000000"], "no key"),
                          (["keys", "create", "--user", "nobody", "--name", "x"], "no user"),
                          (["keys", "create", "--user", "ann", "--name", "x", "-a", "deploy"], "can grant only"),
                          (["keys", "create", "--user", "ann", "--name", "x", "--expires-in", "soon"], "duration"),
                          (["groups", "create", "bad", "-m", "../x"], "model names or patterns")):
        result = run.invoke(app, args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    actions = [a for _, a, _, _ in _audit(tmp_path)]
    assert actions == ["group.create", "user.create", "user.create", "group.add_member", "key.create", "key.create",
                       "key.revoke"]


def test_users_update_changes_role_and_activation_and_tells_the_servers(run: CliRunner, tmp_path: Path) -> None:
    assert run.invoke(app, ["users", "create", "ann", "--role", "admin", "--password-stdin"],
                      input="ann's password\n").exit_code == 0
    changed = run.invoke(app, ["users", "update", "ann", "--role", "user", "--inactive"])
    assert changed.exit_code == 0 and "role user, inactive" in changed.output, changed.output
    listed = run.invoke(app, ["users", "list"]).output
    assert "ann" in listed and "user" in listed and "no" in listed
    assert "role user, active" in run.invoke(app, ["users", "update", "ann", "--active"]).output
    missing = run.invoke(app, ["users", "update", "nobody", "--inactive"])
    assert missing.exit_code != 0 and "no user" in missing.output
    assert [a for _, a, _, _ in _audit(tmp_path)] == ["user.create", "user.update", "user.update"]

    async def changes() -> list[str]:  # what the servers' change followers see (they clear their caches)
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'mlgate.db'}")
        try:
            async with database.session() as session:
                return list((await session.execute(select(RegistryChange.what).order_by(RegistryChange.id)))
                            .scalars())
        finally:
            await database.dispose()

    assert asyncio.run(changes()) == ["auth: user.update user:ann", "auth: user.update user:ann"]


def test_users_set_password_replaces_the_password_and_ends_admin_sessions(run: CliRunner, tmp_path: Path) -> None:
    from mlgate.auth.store import AuthStore

    async def stamp_and_check(*passwords: str) -> tuple[str, list[bool]]:
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'mlgate.db'}")
        try:
            store = AuthStore(database)
            user = await store.get_user("ann")
            assert user is not None
            return user.session_stamp, [await store.check_password("ann", p) is not None for p in passwords]
        finally:
            await database.dispose()

    assert run.invoke(app, ["users", "create", "ann", "--role", "admin", "--password-stdin"],
                      input="ann's first password\n").exit_code == 0
    before, _ = asyncio.run(stamp_and_check())
    changed = run.invoke(app, ["users", "set-password", "ann"],
                         input="ann's second password\nann's second password\n")
    assert changed.exit_code == 0 and "password changed" in changed.output, changed.output
    assert "second password" not in changed.output  # hidden input
    after, checks = asyncio.run(stamp_and_check("ann's first password", "ann's second password"))
    assert checks == [False, True] and after != before  # the session stamp moved: admin sessions end
    weak = run.invoke(app, ["users", "set-password", "ann", "--password-stdin"], input="short\n")
    assert weak.exit_code == 1 and "at least 8 characters" in weak.output
    assert asyncio.run(stamp_and_check("ann's second password"))[1] == [True]  # a refused change changes nothing
    missing = run.invoke(app, ["users", "set-password", "nobody", "--password-stdin"], input="long enough pw\n")
    assert missing.exit_code == 1 and "no user" in missing.output
    entries = _audit(tmp_path)
    assert [a for _, a, _, _ in entries] == ["user.create", "user.set_password"]
