"""Security headers on every HTTP response.

Always: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer``,
``Cross-Origin-Opener-Policy: same-origin`` and a Content-Security-Policy: ``default-src 'none'`` for API
responses (JSON needs nothing), and only ``frame-ancestors 'none'`` for HTML pages (the docs load their own
scripts). ``Strict-Transport-Security`` when ``hsts_max_age_s`` > 0 (only behind HTTPS). Headers the
application set itself are left alone.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SecurityHeadersMiddleware"]

_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_CSP_API = b"default-src 'none'; frame-ancestors 'none'"
_CSP_HTML = b"frame-ancestors 'none'"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts_max_age_s: int = 0) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_max_age_s}; includeSubDomains".encode() if hsts_max_age_s > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {key.lower() for key, _ in headers}
                html = any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers)
                extra = [*_ALWAYS, (b"content-security-policy", _CSP_HTML if html else _CSP_API)]
                if self.hsts is not None:
                    extra.append((b"strict-transport-security", self.hsts))
                headers.extend((k, v) for k, v in extra if k not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
