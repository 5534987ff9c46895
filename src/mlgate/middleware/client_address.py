"""Resolve the client address once per request and keep it in ``scope["state"]["client_address"]``.

The address is the TCP peer, or, when the peer is a configured trusted proxy, the client named in
``X-Forwarded-For`` (see ``mlgate.auth.client``). Rate limits of anonymous callers and the audit log use it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from mlgate.auth.client import ClientAddressResolver

__all__ = ["ClientAddressMiddleware"]


class ClientAddressMiddleware:
    def __init__(self, app: ASGIApp, *, resolver: ClientAddressResolver) -> None:
        self.app = app
        self.resolver = resolver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            peer = client[0] if client else None
            forwarded = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
            scope.setdefault("state", {})["client_address"] = self.resolver.resolve(peer, forwarded)
        await self.app(scope, receive, send)
