"""Give every request an id: the caller's ``X-Request-ID`` when it is sane, else a new one.

The id is bound into structlog's context for every log line of the request, stored in
``scope["state"]["request_id"]``, and returned in the ``X-Request-ID`` response header. When
``access_log`` is on, one line per request records method, path, status and duration (ms).
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlgate.logs import log_access

__all__ = ["RequestIdMiddleware"]

HEADER = b"x-request-id"
_SANE = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for key, value in scope["headers"]:
            if key == HEADER and _SANE.match(value):
                request_id = value.decode("ascii")
                break
        if not request_id:
            request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        raw_id = request_id.encode("ascii")
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (HEADER, raw_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log:
                log_access(scope["method"], scope["path"], status, round((time.perf_counter() - start) * 1000, 3))
            structlog.contextvars.unbind_contextvars("request_id")
