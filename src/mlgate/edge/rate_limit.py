"""``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` on responses of rate-limited routes.

The limits are checked by the route's security (after authentication and authorization, in that order); it
leaves the tightest quota of the request in its ``RequestState.quota`` and the edge writes it out, on
successes and on 429s alike. ``RateLimit-Reset`` is in seconds (IETF draft "RateLimit header fields for
HTTP"); a 429 also carries ``Retry-After``.
"""

from __future__ import annotations

from mlgate.ratelimit.limiter import Quota

__all__ = ["quota_headers"]


def quota_headers(quota: Quota | None) -> list[tuple[bytes, bytes]]:
    """The RateLimit-* headers of the request's tightest ``quota``; none when the route had no limit."""
    if quota is None:
        return []
    return [(b"ratelimit-limit", str(quota.limit).encode()),
            (b"ratelimit-remaining", str(quota.remaining).encode()),
            (b"ratelimit-reset", str(quota.reset_s).encode())]
