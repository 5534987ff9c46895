"""A strict Content-Security-Policy on the admin's pages: scripts, styles, fonts and requests from this origin
only, no inline script, no plugins, no framing, forms posting only here.

The admin holds the keys to the server, so an injected script there would be worst; the pages need nothing
else (sqladmin's assets and uPlot are served from the package; uPlot styles its nodes through the DOM, which
``style-src 'self'`` allows). Set on HTML answers of the admin only; ``SecurityHeadersMiddleware`` adds the
rest and leaves this one alone.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ADMIN_CSP", "AdminHeadersMiddleware"]

ADMIN_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class AdminHeadersMiddleware:
    """Pure ASGI: the admin's strict Content-Security-Policy on its HTML answers (see the module)."""
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_csp(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    headers.append((b"content-security-policy", ADMIN_CSP.encode()))
                    headers.append((b"referrer-policy", b"same-origin"))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_csp)
