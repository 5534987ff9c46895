"""``mlgate users``, ``mlgate groups`` and ``mlgate keys``: identities from the command line.

These commands work on the database directly (the server need not run), as the local operator: each change
is audited as ``cli:<os user>`` from ``local``. Passwords are prompted for twice and never echoed (or read
from stdin with ``--password-stdin``, for scripts); there is no default password.
"""

from __future__ import annotations

import getpass
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich import box
from rich.table import Table

from mlgate.access import DEFAULT_TIER
from mlgate.auth.caller import Action, Role
from mlgate.auth.keys import KEY_MARK, parse_key
from mlgate.auth.store import Actor, AuthStore
from mlgate.cli.common import ConfigOption, err, on_database, out
from mlgate.db.base import utcnow

__all__ = ["groups_app", "keys_app", "users_app"]

users_app = typer.Typer(help="Manage users (argon2-hashed passwords; roles admin, deployer, user).",
                        no_args_is_help=True)
groups_app = typer.Typer(help="Manage groups: the models their members may use.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys (shown once at creation, stored only as a hash).", no_args_is_help=True)

DatabaseOption = Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: settings).", show_default=False)]
T = TypeVar("T")
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _run(config: Path | None, database_url: str | None, work: Callable[[AuthStore], Awaitable[T]]) -> T:
    """Run ``work`` with a store on the configured database (migrated first, unless auto-upgrade is off)."""
    return on_database(config, database_url, lambda settings, database: work(AuthStore(
        database, tiers=settings.rate_limit_tiers.keys(), max_active_keys=settings.max_active_keys_per_user)))


def _actor() -> Actor:
    return Actor(f"cli:{getpass.getuser()}", client="local")


def _password(prompt: str, from_stdin: bool) -> str:
    """A password: stdin's first line (``--password-stdin``), else typed twice, hidden."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))


def _minute(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="Letters, digits, '.', '_', '@', '-'.")],
    role: Annotated[Role, typer.Option(help="admin, deployer or user.")] = Role.USER,
    group: Annotated[list[str] | None, typer.Option("--group", "-g", help="Add to this group (repeatable).")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Create a user; prompts for the password twice (the first admin: --role admin)."""
    password = _password("Password", password_stdin)
    user = _run(config, database_url,
                lambda store: store.create_user(username, password, role, group or [], actor=_actor()))
    out.print(f"user {user.username} created (role {user.role.value}"
              f"{', groups ' + ', '.join(user.groups) if user.groups else ''})")


@users_app.command("list")
def users_list(config: ConfigOption = None, database_url: DatabaseOption = None) -> None:
    """List the users with their roles and groups."""
    users = _run(config, database_url, lambda store: store.list_users())
    table = Table(title="Users")
    for column in ("username", "role", "active", "groups"):
        table.add_column(column)
    for user in users:
        table.add_row(user.username, user.role.value, "yes" if user.is_active else "no", ", ".join(user.groups))
    out.print(table)


@users_app.command("update")
def users_update(
    username: Annotated[str, typer.Argument(help="The user to change.")],
    role: Annotated[Role | None, typer.Option(help="New role: admin, deployer or user.")] = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive", help="Let the user sign in, or stop them "
                                                "(their keys and tokens are refused too).")] = None,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Change a user's role or deactivate them; running servers apply it within about a second."""
    user = _run(config, database_url, lambda store: store.update_user(username, role=role, active=active,
                                                                      actor=_actor()))
    out.print(f"user {user.username}: role {user.role.value}, {'active' if user.is_active else 'inactive'}")


@users_app.command("set-password")
def users_set_password(
    username: Annotated[str, typer.Argument(help="The user whose password to replace.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Replace a user's password; prompts twice. Their admin sessions end; API keys stay valid."""
    password = _password("New password", password_stdin)
    _run(config, database_url, lambda store: store.set_password(username, password, actor=_actor()))
    out.print(f"user {username}: password changed; their admin sessions have ended")


@groups_app.command("create")
def groups_create(
    name: Annotated[str, typer.Argument(help="Group name.")],
    model: Annotated[list[str], typer.Option("--model", "-m", help="Model name or pattern with '*' (repeatable).")],
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Create a group whose members may use these models (within their role)."""
    _run(config, database_url, lambda store: store.create_group(name, model, actor=_actor()))
    out.print(f"group {name} created (models: {', '.join(model)})")


@groups_app.command("add")
def groups_add(group: str, username: str, config: ConfigOption = None, database_url: DatabaseOption = None) -> None:
    """Add a user to a group."""
    _run(config, database_url, lambda store: store.add_to_group(username, group, actor=_actor()))
    out.print(f"{username} is in group {group}")


def _expiry(expires_in: str | None) -> datetime | None:
    if expires_in is None:
        return None
    match = _DURATION.fullmatch(expires_in.strip())
    if not match or int(match.group(1)) == 0:
        err.print("[red]error:[/red] --expires-in is a duration like 30d, 12h, 90m or 2w")
        raise typer.Exit(2)
    return utcnow() + timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option("--user", "-u", help="The key's owner.")],
    name: Annotated[str, typer.Option("--name", "-n", help="What the key is for, e.g. 'laptop'.")],
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Model name or pattern (repeatable) "
                                                    "(default: every model the user may use).")] = None,
    action: Annotated[list[Action] | None, typer.Option("--action", "-a", help="predict, deploy or admin "
                                                        "(repeatable) (default: the user's role's).")] = None,
    expires_in: Annotated[str | None, typer.Option(help="Expire after e.g. 30d, 12h, 2w.")] = None,
    tier: Annotated[str, typer.Option(help="Rate-limit tier.")] = DEFAULT_TIER,
    plain: Annotated[bool, typer.Option("--plain", help="Print only the key (for scripts).")] = False,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Create an API key. The key is printed once: it is stored only as a hash and cannot be shown again."""
    expires_at = _expiry(expires_in)
    key, info = _run(config, database_url, lambda store: store.create_key(
        user, name, models=model or ["*"], actions=action, expires_at=expires_at, tier=tier, actor=_actor()))
    if plain:
        print(key)
        return
    out.print(f"API key {info.prefix} for {info.username}: models {', '.join(info.models)}; actions "
              f"{', '.join(info.actions)}; expires {_when(info.expires_at)}")
    out.print("Store it now, it will not be shown again:")
    print(key)


@keys_app.command("list")
def keys_list(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's keys.")] = None,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """List API keys (prefixes only; the keys themselves are not stored)."""
    keys = _run(config, database_url, lambda store: store.list_keys(user))
    now = utcnow()
    # Readable in 80 columns: two lines per key (user over name, models over actions, tier over state, expiry
    # over last use), light borders, long cells fold instead of being cut.
    table = Table(title="API keys", box=box.SIMPLE_HEAD, title_justify="left", show_lines=False)
    table.add_column("prefix", no_wrap=True, min_width=16)
    table.add_column("user\nname", overflow="fold", ratio=2)
    table.add_column("models\nactions", overflow="fold", ratio=3)
    table.add_column("tier\nstate", overflow="fold", ratio=1, min_width=7)
    table.add_column("expires (UTC)\nlast used", no_wrap=True)
    for key in keys:
        state = "revoked" if key.revoked_at else ("active" if key.usable(now) else "expired")
        table.add_row(key.prefix, f"{key.username}\n{key.name}", f"{' '.join(key.models)}\n{', '.join(key.actions)}",
                      f"{key.tier}\n{state}", f"{_minute(key.expires_at)}\n{_minute(key.last_used_at)}")
        table.add_section()
    out.print(table)


_HEX12 = re.compile(r"[0-9a-f]{12}")


def _stored_prefix(text: str) -> str:
    """The stored prefix (``mlg_<12 hex>``) of what a user may paste: that prefix, its 12 hex digits (the
    ``<prefix>`` of ``mlg_<prefix>_<secret>``), ``key:mlg_...`` as the logs name keys, or the whole key."""
    text = text.strip().removeprefix("key:").split(" ", 1)[0]
    whole = parse_key(text)
    if whole is not None:
        return whole
    if _HEX12.fullmatch(text):
        return f"{KEY_MARK}{text}"
    return text


@keys_app.command("revoke")
def keys_revoke(prefix: Annotated[str, typer.Argument(
                    help="The key's prefix as keys list shows it (mlg_0123456789ab), its 12 hex digits alone, the "
                    "prediction log's key:mlg_... or the whole key.")],
                config: ConfigOption = None, database_url: DatabaseOption = None) -> None:
    """Revoke an API key at once (running servers refuse it within about a second)."""
    stored = _stored_prefix(prefix)
    info = _run(config, database_url, lambda store: store.revoke_key(stored, actor=_actor()))
    out.print(f"key {info.prefix} ({info.name}, user {info.username}) revoked at {_when(info.revoked_at)}")
