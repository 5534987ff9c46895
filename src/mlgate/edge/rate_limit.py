"""``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` on responses of rate-limited routes.

The limits are checked by the route's security (after authentication and authorization, in that order); it
leaves the tightest quota of the request in ``scope["state"]["rate_limit"]`` and the edge writes it out, on
successes and on 429s alike. ``RateLimit-Reset`` is in seconds (IETF draft "RateLimit header fields for
HTTP"); a 429 also carries ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlgate.ratelimit.limiter import Quota

__all__ = ["STATE_KEY", "quota_headers"]

STATE_KEY = "rate_limit"
"""Where the security layer leaves the request's tightest ``Quota`` in ``scope["state"]``."""


def quota_headers(state: Mapping[str, Any]) -> list[tuple[bytes, bytes]]:
    """The RateLimit-* headers of the quota in the request's ``state``; none when the route had no limit."""
    quota = state.get(STATE_KEY)
    if not isinstance(quota, Quota):
        return []
    return [(b"ratelimit-limit", str(quota.limit).encode()),
            (b"ratelimit-remaining", str(quota.remaining).encode()),
            (b"ratelimit-reset", str(quota.reset_s).encode())]
