"""The limiter (``mlgate.ratelimit.limiter``) on its memory storage, and on a storage that is down.

No app: ``RateLimits.consume`` is called as the security layer calls it. The storage-down tests use a real
Redis URL on a closed port (connections are refused at once) and an injected clock for the retry interval.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

import pytest

from mlgate.access import RateLimitTier
from mlgate.errors import RateLimitUnavailable
from mlgate.ratelimit.limiter import RETRY_AFTER_FAILURE_S, LimitExceeded, Quota, RateLimits
from tests.processes import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
async def limits() -> AsyncIterator[RateLimits]:
    limiter = RateLimits("memory://")
    yield limiter
    await limiter.aclose()


async def test_requests_are_counted_per_identity_and_model_until_the_limit(limits: RateLimits) -> None:
    tier = RateLimitTier(requests="3/minute")
    quotas = [await limits.consume("default", tier, "key:1", "churn", "requests") for _ in range(3)]
    assert [q.remaining for q in quotas if q] == [2, 1, 0]
    assert all(q is not None and q.limit == 3 and 0 < q.reset_s <= 60 for q in quotas)
    with pytest.raises(LimitExceeded) as refused:
        await limits.consume("default", tier, "key:1", "churn", "requests")
    assert refused.value.status == 429 and refused.value.quota.remaining == 0
    assert 0 < refused.value.retry_after_s <= 60
    assert "rate limit of 3 requests per 1 minute reached" in refused.value.message
    # Another identity, another model, another tier: counters of their own.
    assert await limits.consume("default", tier, "key:2", "churn", "requests") == Quota(3, 2, quotas[0].reset_s)
    assert (await limits.consume("default", tier, "key:1", "fraud", "requests")).remaining == 2  # type: ignore[union-attr]
    assert (await limits.consume("gold", tier, "key:1", "churn", "requests")).remaining == 2  # type: ignore[union-attr]
    assert limits.metrics.registry.get_sample_value(
        "mlgate_rate_limited_total", {"tier": "default", "unit": "requests"}) == 1


async def test_rows_cost_the_batch_size_and_a_batch_over_the_limit_says_so(limits: RateLimits) -> None:
    tier = RateLimitTier(rows="5/minute")
    assert (await limits.consume("default", tier, "key:1", "m", "rows", cost=3)).remaining == 2  # type: ignore[union-attr]
    with pytest.raises(LimitExceeded) as over:
        await limits.consume("default", tier, "key:1", "m", "rows", cost=3)
    assert "rate limit of 5 rows" in over.value.message
    with pytest.raises(LimitExceeded) as too_big:
        await limits.consume("default", tier, "key:2", "m", "rows", cost=6)
    assert "this request costs 6 rows, more than the rate limit of 5" in too_big.value.message
    assert "send smaller batches" in too_big.value.message and too_big.value.retry_after_s == 60
    assert await limits.consume("default", tier, "key:1", "m", "requests") is None  # no request limit


async def test_the_tightest_of_several_limits_is_reported_and_the_daily_quota_counts_too(limits: RateLimits) -> None:
    tier = RateLimitTier(requests="10/minute;100/hour", daily_requests=2)
    first = await limits.consume("default", tier, "user:1", "m", "requests")
    assert first is not None and (first.limit, first.remaining) == (2, 1)  # 1 of 2 left beats 9 of 10
    await limits.consume("default", tier, "user:1", "m", "requests")
    with pytest.raises(LimitExceeded) as refused:
        await limits.consume("default", tier, "user:1", "m", "requests")
    assert "daily quota of 2 requests per day reached" in refused.value.message
    assert refused.value.retry_after_s > 60 * 60  # the quota's window, not the minute's


async def test_nothing_to_check_is_none(limits: RateLimits) -> None:
    assert await limits.consume("default", RateLimitTier(), "key:1", "m", "requests") is None
    assert await limits.consume("default", RateLimitTier(rows="1/minute"), "key:1", "m", "rows", cost=0) is None


async def test_login_attempts_are_limited_per_address(limits: RateLimits) -> None:
    for _ in range(2):
        await limits.consume_login("2/minute", "198.51.100.1")
    with pytest.raises(LimitExceeded):
        await limits.consume_login("2/minute", "198.51.100.1")
    await limits.consume_login("2/minute", "198.51.100.2")


def test_only_memory_and_redis_storages_are_accepted() -> None:
    with pytest.raises(ValueError, match="memory:// or redis://"):
        RateLimits("mongodb://localhost")


@pytest.mark.parametrize("policy", ["allow", "refuse"])
async def test_a_storage_that_is_down_applies_the_policy_and_is_retried_once_a_second(
    policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    limits = RateLimits(f"redis://127.0.0.1:{free_port()}/0", on_storage_error=policy,  # type: ignore[arg-type]
                        log_interval_s=0, clock=lambda: now[0])
    tier = RateLimitTier(requests="1/minute")

    async def consume() -> str:
        try:
            return str(await limits.consume("default", tier, "key:1", "m", "requests"))
        except RateLimitUnavailable as exc:
            assert exc.status == 503
            return "503"

    try:
        with caplog.at_level(logging.WARNING, logger="mlgate.ratelimit"):
            expected = "None" if policy == "allow" else "503"
            assert await consume() == expected  # tried the storage: connection refused
            now[0] += RETRY_AFTER_FAILURE_S - 0.001
            assert await consume() == expected  # marked down: not tried
            now[0] += 0.001
            assert await consume() == expected  # tried again
        tried = ["storage marked down" not in r.getMessage() for r in caplog.records
                 if "rate-limit storage unreachable" in r.getMessage()]
        assert tried == [True, False, True]
        assert limits.metrics.registry.get_sample_value(
            "mlgate_rate_limit_storage_errors_total", {"policy": policy}) == 3
    finally:
        await limits.aclose()


async def test_failures_are_logged_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limits = RateLimits(f"redis://127.0.0.1:{free_port()}/0", log_interval_s=60, clock=lambda: now[0])
    try:
        with caplog.at_level(logging.WARNING, logger="mlgate.ratelimit"):
            for _ in range(5):
                await limits.consume("default", RateLimitTier(requests="1/minute"), "key:1", "m", "requests")
                now[0] += 2
            now[0] = 61
            await limits.consume("default", RateLimitTier(requests="1/minute"), "key:1", "m", "requests")
        lines = [r.getMessage() for r in caplog.records if "rate-limit storage unreachable" in r.getMessage()]
        assert len(lines) == 2, lines
        assert re.search(r"suppressed_since_last_log\W+4\b", lines[1]), lines[1]  # the four calls in between
    finally:
        await limits.aclose()
