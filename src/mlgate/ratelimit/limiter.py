"""Rate limits and quotas on the ``limits`` library: memory storage in one process, Redis across replicas.

A tier (``mlgate.access.RateLimitTier``) gives sliding-window limits on requests and on rows (or tokens),
and daily quotas (fixed 24-hour windows). ``consume`` charges a cost to every limit of one unit, in order,
and raises ``LimitExceeded`` (429) at the first that has no room. Counters are keyed by tier, caller
identity, model and unit, so switching protocol (V1, V2, OpenAI) or version does not reset them.

When the storage fails (Redis down), the configured policy applies: ``allow`` lets the request through,
``refuse`` answers 503. Either way the failure is counted in ``mlgate_rate_limit_storage_errors_total``, logged
at most once per ``log_interval_s``, and the storage is left alone for ``RETRY_AFTER_FAILURE_S`` so a dead
Redis costs one connection attempt per second, not one per request. Password attempts (``consume_login``) are
the exception: while the storage fails they are counted in this process's memory instead (policy label
``local``), so a Redis outage neither locks admins out (``refuse``) nor lifts the brute-force limit (``allow``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import structlog
from limits import RateLimitItem, RateLimitItemPerDay, parse_many
from limits.aio.strategies import FixedWindowRateLimiter, RateLimiter, SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from prometheus_client import CollectorRegistry, Counter

from mlgate.access import RateLimitTier
from mlgate.errors import RateLimited, RateLimitUnavailable

__all__ = ["LimitExceeded", "Quota", "RateLimitMetrics", "RateLimits", "Unit"]

log = structlog.get_logger("mlgate.ratelimit")

Unit = Literal["requests", "rows"]
RETRY_AFTER_FAILURE_S = 1.0


@dataclass(frozen=True)
class Quota:
    """What the ``RateLimit-*`` headers say about one limit: its size, what is left, seconds to reset."""

    limit: int
    remaining: int
    reset_s: int

    def tighter(self, other: Quota | None) -> Quota:
        """The tighter of this quota and ``other``: the one with the smaller share of its limit remaining."""
        if other is None:
            return self
        return self if self.remaining / max(self.limit, 1) <= other.remaining / max(other.limit, 1) else other


class LimitExceeded(RateLimited):
    """A 429 with the quota of the limit that was hit (for the ``RateLimit-*`` headers)."""

    def __init__(self, message: str, retry_after_s: float, quota: Quota) -> None:
        super().__init__(message, retry_after_s)
        self.quota = quota


class RateLimitMetrics:
    """Counters of the limiter, in the app's CollectorRegistry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.limited = Counter("mlgate_rate_limited", "Requests refused with 429, by tier and unit.",
                               ("tier", "unit"), registry=self.registry)
        self.storage_errors = Counter(
            "mlgate_rate_limit_storage_errors",
            "Requests whose limits could not be checked because the storage failed, by the policy applied.",
            ("policy",), registry=self.registry)


@lru_cache(maxsize=1024)
def _items(tier: RateLimitTier, unit: Unit) -> tuple[tuple[bool, RateLimitItem], ...]:
    """(is_quota, item) for each limit of ``unit`` in ``tier``."""
    text = tier.requests if unit == "requests" else tier.rows
    daily = tier.daily_requests if unit == "requests" else tier.daily_rows
    items: list[tuple[bool, RateLimitItem]] = [(False, item) for item in parse_many(text)] if text.strip() else []
    if daily is not None:
        items.append((True, RateLimitItemPerDay(daily)))
    return tuple(items)


def _async_uri(uri: str) -> tuple[str, dict[str, Any]]:
    if uri.startswith("async+"):
        uri = uri.removeprefix("async+")
    scheme = uri.partition("://")[0]
    if scheme == "memory":
        return "async+memory://", {}
    if scheme in {"redis", "rediss", "redis+unix"}:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        options = {"implementation": "redispy", "socket_connect_timeout": 1.0, "socket_timeout": 1.0,
                   "retry": Retry(NoBackoff(), 1)}
        return f"async+{uri}", options
    raise ValueError(f"rate_limit_storage must be memory:// or redis://host:port/db, not {scheme}://")


class RateLimits:
    """Counters in one storage, shared by every request of the app (and by replicas, with Redis)."""

    def __init__(self, storage: str = "memory://", *, key_prefix: str = "mlgate",
                 on_storage_error: Literal["allow", "refuse"] = "allow", log_interval_s: float = 60.0,
                 metrics: RateLimitMetrics | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        uri, options = _async_uri(storage)
        if options:
            options["key_prefix"] = key_prefix
        self.storage = storage_from_string(uri, wrap_exceptions=True, **options)
        self.sliding: RateLimiter = SlidingWindowCounterRateLimiter(self.storage)
        self.fixed: RateLimiter = FixedWindowRateLimiter(self.storage)
        self.policy = on_storage_error
        self.log_interval_s = log_interval_s
        self.metrics = metrics or RateLimitMetrics()
        self.clock = clock
        self._down_until = -math.inf
        self._last_log = -math.inf
        self._suppressed = 0
        self._local: Any = None
        """Memory storage of the login limit while the storage fails (made on first use)."""
        self._local_sliding: RateLimiter = self.sliding

    async def aclose(self) -> None:
        """Close the storage's connections (Redis) and stop its expiry task (memory)."""
        bridge = getattr(self.storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        if client is not None and hasattr(client, "aclose"):
            await client.aclose()
        for storage in (self.storage, self._local):
            timer = getattr(storage, "timer", None)
            if timer is not None and not timer.done():
                timer.cancel()

    async def consume(self, tier_name: str, tier: RateLimitTier, identity: str, scope: str, unit: Unit,
                      cost: int = 1) -> Quota | None:
        """Charge ``cost`` (requests, or rows/tokens) to every ``unit`` limit of ``tier`` for ``identity``
        on ``scope`` (the model name). Returns the tightest quota after the charge, None when nothing was
        checked. Raises LimitExceeded (429) or, with the refuse policy and the storage down,
        RateLimitUnavailable (503)."""
        items = _items(tier, unit)
        return await self._consume(items, (tier_name, identity, scope, unit), cost, tier_name, unit)

    async def consume_login(self, limit: str, address: str) -> None:
        """One password attempt from ``address`` against ``limit`` (e.g. ``"10/minute"``).

        Raises LimitExceeded (429). Never RateLimitUnavailable: when the storage fails, the attempt is
        counted against the same limit in this process's memory."""
        items = tuple((False, item) for item in parse_many(limit))
        await self._consume(items, ("login", address), 1, "login", "requests", local_fallback=True)

    async def _consume(self, items: Sequence[tuple[bool, RateLimitItem]], ids: tuple[str, ...], cost: int,
                       tier_name: str, unit: Unit, *, local_fallback: bool = False) -> Quota | None:
        if not items or cost <= 0:
            return None
        if self.clock() < self._down_until:
            return await self._failed(None, items, ids, cost, tier_name, unit, local_fallback)
        try:
            return await self._hit(self.sliding, self.fixed, items, ids, cost, tier_name, unit)
        except RateLimited:
            raise
        except Exception as exc:  # noqa: BLE001 - any storage failure (StorageError, OSError) takes the policy
            self._down_until = self.clock() + RETRY_AFTER_FAILURE_S
            return await self._failed(exc, items, ids, cost, tier_name, unit, local_fallback)

    async def _failed(self, exc: Exception | None, items: Sequence[tuple[bool, RateLimitItem]],
                      ids: tuple[str, ...], cost: int, tier_name: str, unit: Unit,
                      local_fallback: bool) -> Quota | None:
        if not local_fallback:
            self._storage_failed(exc)
            return None
        self._note_failure(exc, "local")
        if self._local is None:
            self._local = storage_from_string("async+memory://")
            self._local_sliding = SlidingWindowCounterRateLimiter(self._local)
        return await self._hit(self._local_sliding, self._local_sliding, items, ids, cost, tier_name, unit)

    async def _hit(self, sliding: RateLimiter, fixed: RateLimiter, items: Sequence[tuple[bool, RateLimitItem]],
                   ids: tuple[str, ...], cost: int, tier_name: str, unit: Unit) -> Quota | None:
        tightest: Quota | None = None
        for is_quota, item in items:
            strategy = fixed if is_quota else sliding
            ok = await strategy.hit(item, *ids, cost=cost)
            stats = await strategy.get_window_stats(item, *ids)
            reset_s = max(0, math.ceil(stats.reset_time - time.time()))
            if reset_s == 0 and stats.remaining < item.amount:  # Redis may report a whole window as 0
                reset_s = item.get_expiry()
            quota = Quota(limit=item.amount, remaining=stats.remaining, reset_s=reset_s)
            if not ok:
                self.metrics.limited.labels(tier_name, unit).inc()
                raise LimitExceeded(self._message(item, is_quota, unit, cost),
                                    reset_s if cost <= item.amount else item.get_expiry(), quota)
            tightest = quota.tighter(tightest)
        return tightest

    @staticmethod
    def _message(item: RateLimitItem, is_quota: bool, unit: Unit, cost: int) -> str:
        what = "daily quota" if is_quota else "rate limit"
        window = "day" if is_quota else f"{item.multiples} {item.GRANULARITY.name}"
        text = f"{what} of {item.amount} {unit} per {window} reached"
        if cost > item.amount:
            text = f"this request costs {cost} {unit}, more than the {what} of {item.amount} per {window}; " \
                   "send smaller batches"
        return text

    def _storage_failed(self, exc: Exception | None) -> None:
        """Count and (rate-limited) log a storage failure; raise RateLimitUnavailable under "refuse"."""
        self._note_failure(exc, self.policy)
        if self.policy == "refuse":
            raise RateLimitUnavailable()

    def _note_failure(self, exc: Exception | None, policy: str) -> None:
        self.metrics.storage_errors.labels(policy).inc()
        now = self.clock()
        if now - self._last_log >= self.log_interval_s:
            log.warning("rate-limit storage unreachable; applying the policy", policy=policy,
                        error=f"{type(exc).__name__}: {exc}" if exc else "storage marked down",
                        suppressed_since_last_log=self._suppressed)
            self._last_log = now
            self._suppressed = 0
        else:
            self._suppressed += 1
