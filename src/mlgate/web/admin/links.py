"""Relative links in the admin: its pages and redirects never carry the address from the request's Host header.

Starlette builds ``url_for`` links (sqladmin's pages, forms and redirects all use it) as absolute URLs from the
Host header, so a forged Host put another site's address into the admin's links and ``Location`` headers.
``RelativeLinks`` (pure ASGI, the admin's outermost layer) shows the admin a fixed, unroutable host instead
(``mlgate-admin.invalid``, RFC 2606) and strips ``http://mlgate-admin.invalid`` from the ``Location`` header and
from text bodies (HTML, JSON, scripts) on the way out: the links become paths (``/admin/models``), which
browsers resolve against the address they used, whatever proxy is in front.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HOST", "RelativeLinks"]

HOST = b"mlgate-admin.invalid"
_PREFIX = b"http://" + HOST
_TEXT = (b"text/", b"application/json", b"application/javascript")


class RelativeLinks:
    """Pure ASGI: links and redirects in admin answers made relative, never built from the ``Host`` header."""
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
        scope = {**scope, "scheme": "http", "server": None, "headers": [(b"host", HOST), *headers]}
        start: Message | None = None
        body = bytearray()

        async def relative_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(raw=list(message.get("headers", [])))
                location = response_headers.get("location")
                if location is not None:
                    response_headers["location"] = _relative(location.encode("latin-1")).decode("latin-1")
                message = {**message, "headers": response_headers.raw}
                content_type = response_headers.get("content-type", "").encode("latin-1")
                if scope["method"] != "HEAD" and content_type.startswith(_TEXT):
                    start = message  # held until the whole body is in, to fix its length
                    return
                await send(message)
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            content = _relative(bytes(body))
            response_headers = MutableHeaders(raw=list(start["headers"]))
            if "content-length" in response_headers:
                response_headers["content-length"] = str(len(content))
            await send({**start, "headers": response_headers.raw})
            await send({"type": "http.response.body", "body": content, "more_body": False})

        await self.app(scope, receive, relative_send)


def _relative(data: bytes) -> bytes:
    return data.replace(_PREFIX, b"") if _PREFIX in data else data
