"""Authentication: the ``Authorization`` header of a request -> a ``Caller`` (or 401).

No header: an anonymous caller. ``Bearer mlg_...``: an API key, found by its prefix and checked against its
stored hash in constant time, refused when expired, revoked or its user deactivated. ``Bearer <JWT>``: an
access token from the token route (a JWT: its value has dots), refused when forged, tampered with or expired;
a playground token (made by the admin for its signed-in user) may only predict and is refused once that admin
session ended (``mlgate.auth.tokens``). A
request never falls back to anonymous because its mlgate credentials were bad; another scheme, an empty value
or two Authorization headers are refused too. A bearer value that is neither a key nor a token (``unused``,
``sk-...``: what an SDK such as ``openai``, which always sends one, carries) names no mlgate credential: the
caller is anonymous, served only by models open to anonymous callers (401 ``unauthenticated`` elsewhere), exactly
as without the header. The caller learns only "invalid credentials"; the log and the
``mlgate_auth_failures_total`` counter say why. A database that cannot be reached is a 503 (DatabaseUnavailable).
Resolved keys and token users are cached briefly in the process (``mlgate.auth.cache``: keyed on the whole
key's hash, cleared on any identity change here or on another replica); expiry is checked on every request.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from datetime import timedelta
from typing import NoReturn

import structlog
from cachetools import TTLCache
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.exc import DBAPIError

from mlgate.access import DEFAULT_TIER
from mlgate.auth.cache import CredentialCache
from mlgate.auth.caller import ROLE_ACTIONS, Action, Caller, CallerKind, Role
from mlgate.auth.keys import KEY_MARK, hash_key, key_matches, parse_key
from mlgate.auth.store import AuthStore, KeyRecord, UserInfo
from mlgate.auth.tokens import PLAYGROUND_USE, TokenIssuer, stamp_digest
from mlgate.db.base import utcnow
from mlgate.errors import DatabaseUnavailable, InvalidCredentials

__all__ = ["TOUCH_INTERVAL", "AuthMetrics", "Authenticator"]

log = structlog.get_logger("mlgate.auth")

TOUCH_INTERVAL = timedelta(seconds=60)
"""A key's ``last_used_at`` is written at most this often (one write per key per minute, not per request)."""

_DUMMY_HASH = hash_key("mlg_000000000000_" + "0" * 43)


class AuthMetrics:
    """Prometheus series of authentication: refused credentials by reason (``mlgate_auth_failures_total``)."""
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.failures = Counter("mlgate_auth_failures", "Refused credentials, by reason.", ("reason",),
                                registry=self.registry)


class Authenticator:
    """Resolves credentials against the identity store. ``user_models``: models every signed-in user may use;
    ``cache_size``/``cache_ttl_s``: the credential cache (0: off). The cache is cleared whenever ``store``
    changes an identity (and by ``ControlPlane.refresh`` when another process did)."""

    def __init__(self, store: AuthStore, tokens: TokenIssuer, user_models: Sequence[str] = ("*",),
                 metrics: AuthMetrics | None = None, *, cache_size: int = 0, cache_ttl_s: float = 0) -> None:
        self.store = store
        self.tokens = tokens
        self.user_models = tuple(user_models)
        self.metrics = metrics or AuthMetrics()
        self.keys: CredentialCache[KeyRecord] = CredentialCache(cache_size, cache_ttl_s)
        self.users: CredentialCache[UserInfo] = CredentialCache(cache_size, cache_ttl_s)
        self._touched: TTLCache[int, bool] = TTLCache(max(cache_size, 1024), TOUCH_INTERVAL.total_seconds())
        """Keys whose last use this process wrote in the last TOUCH_INTERVAL (a cached record's is not updated)."""
        store.listeners.append(self.clear_cache)

    def clear_cache(self) -> None:
        """Forget every cached key and user (an identity changed, here or on another replica)."""
        self.keys.clear()
        self.users.clear()

    async def authenticate(self, authorization: Sequence[str], address: str) -> Caller:
        """The caller behind the ``Authorization`` header values of a request (usually zero or one)."""
        if not authorization:
            return Caller(CallerKind.ANONYMOUS, address)
        if len(authorization) > 1:
            self._fail("several authorization headers", address)
        scheme, _, credentials = authorization[0].strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials or " " in credentials:
            self._fail("malformed authorization header", address)
        if not credentials.startswith(KEY_MARK) and "." not in credentials:
            log.debug("bearer value that is not an mlgate key or token: anonymous", client=address)
            return Caller(CallerKind.ANONYMOUS, address)
        try:
            if credentials.startswith(KEY_MARK):
                return await self._key(credentials, address)
            return await self._token(credentials, address)
        except (DBAPIError, OSError) as exc:  # 503 with Retry-After, not a 500: the client may retry
            raise DatabaseUnavailable("credentials cannot be checked: the database cannot be reached; "
                                      "try again shortly") from exc

    async def _key(self, key: str, address: str) -> Caller:
        prefix = parse_key(key)
        if prefix is None:
            self._fail("malformed key", address)
        digest = hash_key(key)
        cached = self.keys.get(digest)  # under the whole key's hash: a wrong secret never finds an entry
        generation = self.keys.generation
        record = cached or await self.store.key_record(prefix)
        if record is None:
            key_matches(key, _DUMMY_HASH)  # same work as for a known prefix
            self._fail("unknown key", address, prefix)
        if not key_matches(key, record.secret_hash):  # on a cache hit too: it costs about a microsecond
            self._fail("wrong key secret", address, prefix)
        now = utcnow()
        info = record.key
        if info.revoked_at is not None:
            self._fail("revoked key", address, prefix)
        if info.expires_at is not None and info.expires_at <= now:
            self._fail("expired key", address, prefix)
        if not record.user.is_active:
            self._fail("inactive user", address, prefix)
        if cached is None:
            self.keys.put(digest, record, generation)
        if (info.last_used_at is None or now - info.last_used_at >= TOUCH_INTERVAL) and info.id not in self._touched:
            self._touched[info.id] = True
            try:
                await self.store.touch_key(info.id, now)
            except Exception:  # noqa: BLE001 - a missed last-used write must not refuse a valid key
                log.warning("could not record the key's last use", key_prefix=prefix, exc_info=True)
        user = record.user
        return Caller(CallerKind.KEY, address, user_id=user.id, username=user.username, role=user.role,
                      key_id=info.id, key_prefix=info.prefix,
                      actions=ROLE_ACTIONS[user.role] & frozenset(info.actions),
                      model_scopes=(self._user_scope(user), info.models), tier=info.tier)

    async def _token(self, token: str, address: str) -> Caller:
        claims = self.tokens.claims(token)
        if claims is None:
            self._fail("invalid access token", address)
        user_id = claims.user_id
        user = self.users.get(user_id)
        if user is None:
            generation = self.users.generation
            user = await self.store.get_user_by_id(user_id)
            if user is None or not user.is_active:
                self._fail("access token of an unknown or inactive user", address)
            self.users.put(user_id, user, generation)
        actions = ROLE_ACTIONS[user.role]
        if claims.use == PLAYGROUND_USE:
            # Made by the admin for its signed-in user: it ends with that session, and it may only predict.
            if claims.session is None or not hmac.compare_digest(claims.session, stamp_digest(user.session_stamp)):
                self._fail("playground token of an ended admin session", address)
            actions = actions & {Action.PREDICT}
        return Caller(CallerKind.TOKEN, address, user_id=user.id, username=user.username, role=user.role,
                      actions=actions, model_scopes=(self._user_scope(user),), tier=DEFAULT_TIER)

    def _user_scope(self, user: UserInfo) -> tuple[str, ...]:
        if user.role is Role.ADMIN:
            return ("*",)
        return tuple(dict.fromkeys((*self.user_models, *user.group_models)))

    def _fail(self, reason: str, address: str, prefix: str | None = None) -> NoReturn:
        self.metrics.failures.labels(reason.replace(" ", "_")).inc()
        log.info("authentication failed", reason=reason, client=address, key_prefix=prefix)
        raise InvalidCredentials()
