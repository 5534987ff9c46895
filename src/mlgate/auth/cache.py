"""A small in-process cache of resolved credentials, so a keyed or token request skips the database.

What is cached: for an API key, its ``KeyRecord`` (key, stored hash, user) under the SHA-256 of the
*whole* key, never under its prefix: a wrong secret with a valid prefix hashes elsewhere, misses, and is
refused by the database path as before. For an access token, the ``UserInfo`` of its user id (the token
itself is verified, signature and expiry, on every request). Only usable results are cached; a key's
expiry and revocation are still checked on every hit.

Invalidation, so revocation stays effectively immediate:

* **This process**: every identity change made through ``AuthStore`` (revoke a key, change a user's role,
  activation or groups, change a key's scopes) clears the whole cache once its transaction has committed.
* **Other processes and replicas**: the same change appends a ``registry_changes`` row (model ``""``,
  what ``auth: ...``) in its transaction and, on PostgreSQL, sends ``NOTIFY mlgate_registry``. The change
  follower every server already runs (``mlgate.catalog.follower``) wakes on it, or sees it on its next poll, and
  ``ControlPlane.refresh`` calls ``clear()`` whenever the highest change id moved. So another process drops
  its entries within the notification latency on PostgreSQL (milliseconds) and within
  ``registry_poll_interval_s`` (default 1 s) on SQLite or when a notification is missed.
* **Bound**: an entry never lives longer than ``auth_cache_ttl_s`` (default 5 s), which is the most a
  change can go unseen if the follower cannot reach the database, or if rows are edited by hand in SQL.

A lookup that read the database before a ``clear()`` does not store its (possibly stale) result: ``put``
takes the generation seen when the lookup began and drops the result if a clear happened since.
Size or TTL 0 turns the cache off (every request reads the database, as before).
"""

from __future__ import annotations

from typing import Generic, TypeVar

from cachetools import TTLCache

__all__ = ["CredentialCache"]

V = TypeVar("V")


class CredentialCache(Generic[V]):
    """At most ``size`` entries, each for at most ``ttl_s`` seconds; ``size`` or ``ttl_s`` 0: off."""

    def __init__(self, size: int, ttl_s: float) -> None:
        self.enabled = size > 0 and ttl_s > 0
        self._entries: TTLCache[object, V] | None = TTLCache(size, ttl_s) if self.enabled else None
        self.generation = 0
        """Bumped by every ``clear()``; a lookup passes the value it began with to ``put``."""

    def get(self, key: object) -> V | None:
        """The cached value of ``key``, or None (also when the cache is off)."""
        return None if self._entries is None else self._entries.get(key)

    def put(self, key: object, value: V, generation: int) -> None:
        """Store ``value`` unless the cache was cleared after the lookup that produced it began."""
        if self._entries is not None and generation == self.generation:
            self._entries[key] = value

    def clear(self) -> None:
        """Forget everything (an identity changed here or on another replica)."""
        self.generation += 1
        if self._entries is not None:
            self._entries.clear()

    def __len__(self) -> int:
        return 0 if self._entries is None else len(self._entries)
