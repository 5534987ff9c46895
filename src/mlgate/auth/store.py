"""Users, groups and API keys in the database: create, look up, list, revoke, each change audited.

Every change writes an audit entry in the same transaction (``mlgate.db.tables.audit``). Password hashing runs on
a worker thread (argon2 takes tens of milliseconds on purpose). Errors are mlgate's: BadRequest for invalid
values, Conflict for a name already taken, NotFound for an unknown user, group or key.
A change that can narrow what existing credentials may do (revoke a key, change a key's scopes, a user's
role, activation or groups) also appends a ``registry_changes`` row (model ``""``, what ``auth: ...``) and,
on PostgreSQL, notifies ``mlgate_registry``, so every replica's change follower clears its credential cache
(``mlgate.auth.cache``); after the commit, ``listeners`` (this process's caches) are called at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import anyio
from sqlalchemy import func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mlgate.access import DEFAULT_TIER
from mlgate.auth.caller import ROLE_ACTIONS, Action, Role, valid_pattern
from mlgate.auth.keys import new_key
from mlgate.auth.passwords import check_password_strength, hash_password, verify_password
from mlgate.db.base import utcnow
from mlgate.db.engine import Database
from mlgate.db.queries.catalog import NOTIFY_CHANNEL
from mlgate.db.tables.audit import Actor, record_audit
from mlgate.db.tables.catalog import RegistryChange
from mlgate.db.tables.identity import ApiKey, Group, GroupMember, User
from mlgate.errors import BadRequest, Conflict, NotFound, TooManyKeys

__all__ = ["Actor", "AuthStore", "KeyInfo", "KeyRecord", "UserInfo"]

_USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


@dataclass(frozen=True)
class UserInfo:
    """A user as the policy sees it: role, whether active, groups and the models they grant."""
    id: int
    username: str
    role: Role
    is_active: bool
    groups: tuple[str, ...]
    group_models: tuple[str, ...]
    """Model names and patterns granted by the user's groups."""
    session_stamp: str = ""
    """Changes whenever the user row does (role, activation, password) and at ``end_sessions``: an admin
    session records it at sign-in and ends when it differs."""


@dataclass(frozen=True)
class KeyInfo:
    """An API key's public record (never its secret): prefix, owner, scope (models, actions), tier, dates."""
    id: int
    prefix: str
    name: str
    username: str
    models: tuple[str, ...]
    actions: tuple[Action, ...]
    tier: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def usable(self, now: datetime) -> bool:
        """Whether the key is neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True)
class KeyRecord:
    """A key row as the authenticator needs it: its info, its stored hash, and its user."""

    key: KeyInfo
    secret_hash: str
    user: UserInfo


def _key_info(row: ApiKey, username: str) -> KeyInfo:
    return KeyInfo(id=row.id, prefix=row.prefix, name=row.name, username=username, models=tuple(row.models),
                   actions=tuple(Action(a) for a in row.actions if a in Action.__members__.values()),
                   tier=row.tier, created_at=row.created_at, expires_at=row.expires_at,
                   revoked_at=row.revoked_at, last_used_at=row.last_used_at)


def _patterns(values: Iterable[str], what: str) -> list[str]:
    patterns = list(dict.fromkeys(values))
    bad = [p for p in patterns if not valid_pattern(p)]
    if bad or not patterns:
        raise BadRequest(f"{what}: give model names or patterns of letters, digits, '.', '_', '-' and '*' "
                         f"(got {bad or 'none'})", field="models")
    return patterns


class AuthStore:
    """Identity data on one ``Database``. ``tiers`` are the rate-limit tier names a key may be given."""

    def __init__(self, database: Database, tiers: Collection[str] = (DEFAULT_TIER,),
                 max_active_keys: int | None = None) -> None:
        self.database = database
        self.tiers = frozenset(tiers)
        self.max_active_keys = max_active_keys
        """Keys a user may hold at once (not revoked, not expired); None: no cap."""
        self.listeners: list[Callable[[], None]] = []
        """Called after each committed identity change (the authenticator clears its cache)."""

    # -- users and groups ---------------------------------------------------------------------------

    async def count_users(self, role: Role | None = None) -> int:
        """How many users there are (of ``role``, when given)."""
        query = select(func.count()).select_from(User)
        if role is not None:
            query = query.where(User.role == role.value)
        async with self.database.session() as session:
            return int((await session.execute(query)).scalar_one())

    async def create_user(self, username: str, password: str, role: Role | str = Role.USER,
                          groups: Sequence[str] = (), *, actor: Actor) -> UserInfo:
        """Create a user (argon2-hashed password) in ``groups``; 400 for a bad name, role or password, 409 when
        the name is taken. Audited as ``actor``.
        """
        if not _USERNAME_RE.fullmatch(username):
            raise BadRequest("a username has 1-64 letters, digits, '.', '_', '@' or '-'", field="username")
        try:
            role = Role(role)
            check_password_strength(password)
        except ValueError as exc:
            raise BadRequest(str(exc), field="role" if "Role" in str(exc) else "password") from None
        password_hash = await anyio.to_thread.run_sync(hash_password, password)
        try:
            async with self.database.session() as session:
                user = User(username=username, password_hash=password_hash, role=role.value, is_active=True)
                session.add(user)
                await session.flush()
                for group in await self._groups(session, groups):
                    session.add(GroupMember(group_id=group.id, user_id=user.id))
                record_audit(session, actor=actor.name, action="user.create", target=f"user:{username}",
                             detail={"role": role.value, "groups": list(groups)}, client=actor.client,
                             request_id=actor.request_id)
        except IntegrityError:
            raise Conflict(f"user '{username}' already exists", field="username") from None
        found = await self.get_user(username)
        assert found is not None
        return found

    async def create_group(self, name: str, models: Iterable[str], *, actor: Actor) -> None:
        """Create a group granting ``models`` (names or patterns) to its members; 409 when it exists."""
        if not _USERNAME_RE.fullmatch(name):
            raise BadRequest("a group name has 1-64 letters, digits, '.', '_', '@' or '-'", field="name")
        patterns = _patterns(models, "group models")
        try:
            async with self.database.session() as session:
                session.add(Group(name=name, models=patterns))
                record_audit(session, actor=actor.name, action="group.create", target=f"group:{name}",
                             detail={"models": patterns}, client=actor.client, request_id=actor.request_id)
        except IntegrityError:
            raise Conflict(f"group '{name}' already exists", field="name") from None

    async def add_to_group(self, username: str, group: str, *, actor: Actor) -> None:
        """Add ``username`` to ``group``; 404 when either is unknown."""
        async with self.database.session() as session:
            user = await self._user_row(session, username)
            (row,) = await self._groups(session, [group])
            exists = await session.get(GroupMember, (row.id, user.id))
            if exists is None:
                session.add(GroupMember(group_id=row.id, user_id=user.id))
                record_audit(session, actor=actor.name, action="group.add_member", target=f"group:{group}",
                             detail={"user": username}, client=actor.client, request_id=actor.request_id)
                await self._auth_change(session, f"group.add_member group:{group} user:{username}", actor)
        self._notify()

    async def update_user(self, username: str, *, role: Role | str | None = None, active: bool | None = None,
                          actor: Actor) -> UserInfo:
        """Change a user's role and/or activation (None: unchanged); in effect on every replica within ~1 s.

        Raises NotFound for an unknown user, BadRequest for an unknown role.
        """
        try:
            new_role = None if role is None else Role(role)
        except ValueError:
            raise BadRequest(f"a role is one of {', '.join(Role)}", field="role") from None
        async with self.database.session() as session:
            user = await self._user_row(session, username)
            detail: dict[str, object] = {}
            if new_role is not None and user.role != new_role.value:
                detail["role"] = [user.role, new_role.value]
                user.role = new_role.value
            if active is not None and user.is_active != active:
                detail["active"] = active
                user.is_active = active
            if detail:
                record_audit(session, actor=actor.name, action="user.update", target=f"user:{username}",
                             detail=detail, client=actor.client, request_id=actor.request_id)
                await self._auth_change(session, f"user.update user:{username}", actor)
        self._notify()
        found = await self.get_user(username)
        assert found is not None
        return found

    async def set_password(self, username: str, password: str, *, actor: Actor) -> None:
        """Replace the user's password (argon2-hashed); their admin sessions and playground tokens end (the
        session stamp changes), keys and access tokens stay valid. Audited as ``actor`` (never the password).

        Raises NotFound for an unknown user, BadRequest (field ``password``) for a password too weak.
        """
        try:
            check_password_strength(password)
        except ValueError as exc:
            raise BadRequest(str(exc), field="password") from None
        password_hash = await anyio.to_thread.run_sync(hash_password, password)
        async with self.database.session() as session:
            user = await self._user_row(session, username)
            user.password_hash = password_hash
            user.updated_at = utcnow()
            record_audit(session, actor=actor.name, action="user.set_password", target=f"user:{username}",
                         detail={}, client=actor.client, request_id=actor.request_id)
            await self._auth_change(session, f"user.set_password user:{username}", actor)
        self._notify()

    async def end_sessions(self, user_id: int) -> None:
        """End every admin session of this user, on every replica (their ``session_stamp`` changes)."""
        async with self.database.session() as session:
            await session.execute(update(User).where(User.id == user_id).values(updated_at=utcnow()))
        self._notify()

    async def list_users(self) -> list[UserInfo]:
        """Every user, by name."""
        async with self.database.session() as session:
            rows = (await session.execute(select(User).order_by(User.username))).scalars().all()
            return [await self._user_info(session, row) for row in rows]

    async def get_user(self, username: str) -> UserInfo | None:
        """The user named ``username``, or None."""
        async with self.database.session() as session:
            row = (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()
            return None if row is None else await self._user_info(session, row)

    async def get_user_by_id(self, user_id: int) -> UserInfo | None:
        """The user with id ``user_id`` (an access token's subject), or None."""
        async with self.database.session() as session:
            row = await session.get(User, user_id)
            return None if row is None else await self._user_info(session, row)

    async def check_password(self, username: str, password: str) -> UserInfo | None:
        """The active user with this password, else None (the same time is spent either way)."""
        async with self.database.session() as session:
            row = (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()
            stored = row.password_hash if row is not None and row.is_active else None
            ok = await anyio.to_thread.run_sync(verify_password, password, stored)
            return await self._user_info(session, row) if ok and row is not None else None

    # -- API keys -----------------------------------------------------------------------------------

    async def create_key(self, username: str, name: str, *, models: Iterable[str] = ("*",),
                         actions: Iterable[Action | str] | None = None, expires_at: datetime | None = None,
                         tier: str = DEFAULT_TIER, actor: Actor) -> tuple[str, KeyInfo]:
        """Make a key for ``username``; returns the key (show it once, it is not stored) and its info.

        ``actions`` default to the user's role's actions and may not exceed them. Raises TooManyKeys (409) when
        the user already holds ``max_active_keys`` keys that are neither revoked nor expired.
        """
        name = name.strip()
        if not 1 <= len(name) <= 100:
            raise BadRequest("a key name has 1-100 characters", field="name")
        patterns = _patterns(models, "key models")
        if tier not in self.tiers:
            raise BadRequest(f"unknown rate-limit tier '{tier}' (known: {', '.join(sorted(self.tiers))})",
                             field="tier")
        if expires_at is not None and (expires_at.tzinfo is None or expires_at <= utcnow()):
            raise BadRequest("expiry must be a future, timezone-aware time", field="expires_at")
        async with self.database.session() as session:
            user = await self._user_row(session, username)
            allowed = ROLE_ACTIONS[Role(user.role)]
            try:
                wanted = sorted(allowed if actions is None else {Action(a) for a in actions})
            except ValueError:
                raise BadRequest(f"actions are {', '.join(Action)}", field="actions") from None
            if not wanted or not set(wanted) <= allowed:
                raise BadRequest(f"user '{username}' (role {user.role}) can grant only "
                                 f"{', '.join(sorted(allowed))}", field="actions")
            if self.max_active_keys is not None:
                now = utcnow()
                active = (await session.execute(
                    select(func.count()).select_from(ApiKey).where(
                        ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None),
                        or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now)))).scalar_one()
                if active >= self.max_active_keys:
                    raise TooManyKeys(f"user '{username}' already has {active} active API keys (setting "
                                      f"max_active_keys_per_user = {self.max_active_keys}); revoke one first")
            made = new_key()
            row = ApiKey(prefix=made.prefix, secret_hash=made.secret_hash, name=name, user_id=user.id,
                         models=patterns, actions=[a.value for a in wanted], tier=tier, created_at=utcnow(),
                         expires_at=expires_at)
            session.add(row)
            await session.flush()
            record_audit(session, actor=actor.name, action="key.create", target=f"key:{made.prefix}",
                         detail={"user": username, "name": name, "models": patterns,
                                 "actions": [a.value for a in wanted], "tier": tier,
                                 "expires_at": expires_at.isoformat() if expires_at else None},
                         client=actor.client, request_id=actor.request_id)
            return made.key, _key_info(row, username)

    async def list_keys(self, username: str | None = None) -> list[KeyInfo]:
        """Every API key (of ``username``, when given), oldest first, without secrets."""
        query = select(ApiKey, User.username).join(User, User.id == ApiKey.user_id).order_by(ApiKey.id)
        if username is not None:
            query = query.where(User.username == username)
        async with self.database.session() as session:
            return [_key_info(row, owner) for row, owner in (await session.execute(query)).all()]

    async def revoke_key(self, prefix: str, *, actor: Actor, owner: str | None = None) -> KeyInfo:
        """Revoke the key (idempotent). With ``owner``, only that user's key (else NotFound, as if unknown)."""
        async with self.database.session() as session:
            query = select(ApiKey, User.username).join(User, User.id == ApiKey.user_id).where(
                ApiKey.prefix == prefix)
            found = (await session.execute(query)).one_or_none()
            if found is None or (owner is not None and found[1] != owner):
                raise NotFound(f"no key with prefix '{prefix}'", field="prefix")
            row, username = found
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                record_audit(session, actor=actor.name, action="key.revoke", target=f"key:{prefix}",
                             detail={"user": username, "name": row.name}, client=actor.client,
                             request_id=actor.request_id)
                await self._auth_change(session, f"key.revoke key:{prefix}", actor)
            info = _key_info(row, username)
        self._notify()
        return info

    async def update_key_scopes(self, prefix: str, *, models: Iterable[str] | None = None,
                                actions: Iterable[Action | str] | None = None, actor: Actor) -> KeyInfo:
        """Narrow or widen a key's models and/or actions (None: unchanged; actions within its user's role).

        Raises NotFound for an unknown key, BadRequest for invalid scopes.
        """
        async with self.database.session() as session:
            found = (await session.execute(select(ApiKey, User).join(User, User.id == ApiKey.user_id)
                                           .where(ApiKey.prefix == prefix))).one_or_none()
            if found is None:
                raise NotFound(f"no key with prefix '{prefix}'", field="prefix")
            row, user = found
            if models is not None:
                row.models = _patterns(models, "key models")
            if actions is not None:
                allowed = ROLE_ACTIONS[Role(user.role)]
                try:
                    wanted = sorted({Action(a) for a in actions})
                except ValueError:
                    raise BadRequest(f"actions are {', '.join(Action)}", field="actions") from None
                if not wanted or not set(wanted) <= allowed:
                    raise BadRequest(f"user '{user.username}' (role {user.role}) can grant only "
                                     f"{', '.join(sorted(allowed))}", field="actions")
                row.actions = [a.value for a in wanted]
            record_audit(session, actor=actor.name, action="key.update", target=f"key:{prefix}",
                         detail={"models": row.models, "actions": row.actions}, client=actor.client,
                         request_id=actor.request_id)
            await self._auth_change(session, f"key.update key:{prefix}", actor)
            info = _key_info(row, user.username)
        self._notify()
        return info

    async def key_record(self, prefix: str) -> KeyRecord | None:
        """The key with ``prefix`` and its user (in any state), for the authenticator."""
        async with self.database.session() as session:
            found = (await session.execute(
                select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.prefix == prefix)
            )).one_or_none()
            if found is None:
                return None
            row, user = found
            return KeyRecord(_key_info(row, user.username), row.secret_hash, await self._user_info(session, user))

    async def touch_key(self, key_id: int, now: datetime) -> None:
        """Record that the key was used at ``now`` (the caller decides how often: this is a write)."""
        async with self.database.session() as session:
            await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))

    # -- helpers ------------------------------------------------------------------------------------

    async def _auth_change(self, session: AsyncSession, what: str, actor: Actor) -> None:
        """Tell every replica (in ``session``'s transaction) that cached credentials may be stale."""
        session.add(RegistryChange(model="", what=f"auth: {what}"[:256], by=actor.name))
        await session.flush()
        if not self.database.is_sqlite:
            await session.execute(text("SELECT pg_notify(:channel, :payload)"),
                                  {"channel": NOTIFY_CHANNEL, "payload": "auth"})

    def _notify(self) -> None:
        for listener in self.listeners:
            listener()

    async def _user_row(self, session: AsyncSession, username: str) -> User:
        row = (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()
        if row is None:
            raise NotFound(f"no user '{username}'", field="username")
        return row

    async def _groups(self, session: AsyncSession, names: Iterable[str]) -> list[Group]:
        names = list(dict.fromkeys(names))
        if not names:
            return []
        rows = list((await session.execute(select(Group).where(Group.name.in_(names)))).scalars())
        missing = sorted(set(names) - {g.name for g in rows})
        if missing:
            raise BadRequest(f"no group {', '.join(repr(m) for m in missing)}; create it first", field="groups")
        return rows

    async def _user_info(self, session: AsyncSession, user: User) -> UserInfo:
        groups = (await session.execute(
            select(Group.name, Group.models).join(GroupMember, GroupMember.group_id == Group.id)
            .where(GroupMember.user_id == user.id).order_by(Group.name)
        )).all()
        models = tuple(dict.fromkeys(m for _, ms in groups for m in ms))
        return UserInfo(id=user.id, username=user.username, role=Role(user.role), is_active=user.is_active,
                        groups=tuple(name for name, _ in groups), group_models=models,
                        session_stamp=user.updated_at.isoformat() if user.updated_at else "")
