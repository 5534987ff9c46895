"""Add ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` to responses of rate-limited routes.

The limits are checked by the route's security dependency (after authentication and authorization, in that
order); it leaves the tightest quota of the request in ``scope["state"]["rate_limit"]`` and this middleware
writes it out, on successes and on 429s alike. ``RateLimit-Reset`` is in seconds (IETF draft
"RateLimit header fields for HTTP"); a 429 also carries ``Retry-After``.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlgate.ratelimit.limiter import Quota

__all__ = ["RateLimitHeadersMiddleware"]


class RateLimitHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            quota = state.get("rate_limit")
            if message["type"] == "http.response.start" and isinstance(quota, Quota):
                message["headers"] = [
                    *message.get("headers", []),
                    (b"ratelimit-limit", str(quota.limit).encode()),
                    (b"ratelimit-remaining", str(quota.remaining).encode()),
                    (b"ratelimit-reset", str(quota.reset_s).encode()),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)
