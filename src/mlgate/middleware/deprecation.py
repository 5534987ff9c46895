"""Mark responses of deprecated API versions with ``Deprecation`` (RFC 9745) and ``Sunset`` (RFC 8594).

Every response under ``/api/<version>/`` of a version in the map gets both headers, errors included, so
a client learns of the deprecation on whatever call it makes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from email.utils import format_datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DeprecationMiddleware"]


def _headers(deprecated: date, sunset: date) -> list[tuple[bytes, bytes]]:
    since = datetime(deprecated.year, deprecated.month, deprecated.day, tzinfo=UTC)
    until = datetime(sunset.year, sunset.month, sunset.day, tzinfo=UTC)
    return [(b"deprecation", f"@{int(since.timestamp())}".encode()),
            (b"sunset", format_datetime(until, usegmt=True).encode())]


class DeprecationMiddleware:
    def __init__(self, app: ASGIApp, *, versions: Mapping[str, tuple[date, date]], prefix: str = "/api/") -> None:
        self.app = app
        self.prefix = prefix
        self.headers = {f"{prefix}{v}/": _headers(d, s) for v, (d, s) in versions.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        extra = next((h for p, h in self.headers.items() if path.startswith(p) or path + "/" == p), None)
        if extra is None:
            await self.app(scope, receive, send)
            return

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_marked)
