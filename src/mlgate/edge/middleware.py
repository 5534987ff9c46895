"""The edge of every HTTP request: one pure ASGI layer, outside FastAPI's own middleware.

In order: give the request its id (``request_id``; set in ``mlgate.logs.REQUEST_ID``, which every log line of
the request carries, and stored in the request's ``RequestState``), resolve its client address (``client_address``,
trusted proxies applied, stored there too), limit its body (``body_limit``:
413 without reading), then run the application; its response gets the ``Deprecation``/``Sunset`` headers of a
deprecated API version, the ``RateLimit-*`` headers of the request's quota, the security headers it lacks and
``X-Request-ID``, in that order. With ``access_log``, one line per request records method, path, status and
duration (ms).

Being outside FastAPI's ``ServerErrorMiddleware``, the edge also marks the generic 500 of an unexpected error.
A ``FastPath`` (``mlgate.edge.fast_path``) serves the inference routes from here, without the router
and FastAPI's layers in between (FastAPI's native telemetry check included): the same edge, the same
endpoints and the same error handlers, about a third less CPU per prediction (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlgate.auth.client import ClientAddressResolver
from mlgate.edge.body_limit import BodyLimit
from mlgate.edge.client_address import resolve_client_address
from mlgate.edge.deprecation import DeprecationHeaders
from mlgate.edge.rate_limit import quota_headers
from mlgate.edge.request_id import HEADER, request_id_of
from mlgate.edge.security_headers import SecurityHeaders
from mlgate.logs import REQUEST_ID, log_access
from mlgate.protocols.state import STATE_KEY, RequestState

__all__ = ["EdgeMiddleware", "FastPath"]


class FastPath(Protocol):
    """Routes the edge serves itself (``mlgate.edge.fast_path``)."""

    def match(self, scope: Scope) -> Any | None:
        """What ``serve`` needs to answer this HTTP request, or None when the request is not for a fast route."""

    async def serve(self, matched: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the request, errors included (never raises for a bad request)."""


class EdgeMiddleware:
    """The pure-ASGI layer in front of the app: see the module docstring for what it does, in order.

    ``app``: the application behind it (FastAPI's stack); ``fast_path``: the inference routes it serves itself
    (None when CORS is configured and must see every request). Websocket and lifespan scopes pass through.
    """

    def __init__(self, app: ASGIApp, *, body_limit: BodyLimit, resolver: ClientAddressResolver,
                 security_headers: SecurityHeaders, deprecation: DeprecationHeaders, access_log: bool = True,
                 fast_path: FastPath | None = None) -> None:
        self.app = app
        self.body_limit = body_limit
        self.resolver = resolver
        self.security_headers = security_headers
        self.deprecation = deprecation
        self.access_log = access_log
        self.fast_path = fast_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope["headers"])
        state = RequestState(request_id=request_id, client_address=resolve_client_address(scope, self.resolver))
        scope.setdefault("state", {})[STATE_KEY] = state
        token = REQUEST_ID.set(request_id)  # every log line of the request carries it (mlgate.logs)
        tail = (HEADER, request_id.encode("ascii"))
        deprecated = self.deprecation.of(scope["path"])
        add_security_headers = self.security_headers.add
        status = 500
        start = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                if deprecated:
                    headers.extend(deprecated)
                if state.quota is not None:
                    headers.extend(quota_headers(state.quota))
                add_security_headers(headers)
                headers.append(tail)
                message["headers"] = headers
            await send(message)

        try:
            limited = self.body_limit.wrap(scope, receive)
            matched = self.fast_path.match(scope) if self.fast_path is not None else None
            if matched is not None:
                await self.fast_path.serve(matched, scope, limited, send_with_headers)  # type: ignore[union-attr]
            else:
                await self.app(scope, limited, send_with_headers)
        finally:
            if self.access_log:
                log_access(scope["method"], scope["path"], status, round((time.perf_counter() - start) * 1000, 3),
                           request_id)
            REQUEST_ID.reset(token)
