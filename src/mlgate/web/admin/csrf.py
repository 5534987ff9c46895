"""CSRF protection of the admin: a per-session token that every state-changing request must send back.

The token is made once per session (``csrf_token``) and put in every form as the hidden field
``csrf_token`` (templates call ``csrf_field(request)``); scripts may send it as the ``X-CSRF-Token``
header instead. ``CsrfMiddleware`` (pure ASGI, inside the session middleware) refuses any POST, PUT,
PATCH or DELETE under the admin whose token is missing or wrong with 403
``{"error", "code": "csrf_failed", "field": "csrf_token"}`` before any route runs, so nothing changes.
The body is read once (into a temporary file past 1 MiB), checked, and replayed to the route; a body
over the edge's limit is answered 413 here.
"""

from __future__ import annotations

import hmac
import secrets
import tempfile
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlgate.errors import MlgateError
from mlgate.protocols.errors import error_response, mlgate_error_response

__all__ = ["FIELD", "HEADER", "CsrfMiddleware", "csrf_field", "csrf_token"]

FIELD = "csrf_token"
HEADER = "x-csrf-token"
_SESSION_KEY = "csrf"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_IN_MEMORY = 1 << 20
_CHUNK = 1 << 16


def csrf_token(request: Request) -> str:
    """This session's token, made on first use (the session cookie then carries it)."""
    token = request.session.get(_SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[_SESSION_KEY] = token
    return token


def csrf_field(request: Request) -> Markup:
    """The hidden form field carrying the token (for Jinja templates)."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(FIELD, csrf_token(request))


class CsrfMiddleware:
    """Pure ASGI: refuses state-changing admin requests without the session's CSRF token (see the module)."""
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _SAFE:
            await self.app(scope, receive, send)
            return
        # The body is kept in a file past _IN_MEMORY bytes: the push form takes archives up to the registry's
        # upload limit. Over the edge's body limit, the read raises PayloadTooLarge: answer it here, since
        # this middleware runs ahead of the admin's routes and their error handling.
        with tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY) as body:
            try:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    body.write(message.get("body", b""))
                    if not message.get("more_body", False):
                        break
            except MlgateError as exc:
                await mlgate_error_response(Request(scope), exc)(scope, receive, send)
                return
            size = body.tell()
            finished = False

            async def replay() -> Message:
                nonlocal finished
                if finished:
                    return await receive()
                chunk = body.read(_CHUNK)
                finished = body.tell() >= size
                return {"type": "http.request", "body": chunk, "more_body": not finished}

            expected = scope.get("session", {}).get(_SESSION_KEY)
            body.seek(0)
            given = await _given_token(scope, replay)
            body.seek(0)  # the route reads the body again from the start
            finished = False
            if not (isinstance(expected, str) and expected and given
                    and hmac.compare_digest(expected.encode(), given.encode())):
                response = error_response(403, "this form is missing its CSRF token or the token is wrong; "
                                          "reload the page and try again", "csrf_failed", field=FIELD)
                await response(scope, receive, send)
                return
            await self.app(scope, replay, send)


async def _given_token(scope: Scope, receive: Receive) -> str | None:
    request = Request(scope, receive)
    header = request.headers.get(HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return None
    try:
        form = await request.form()
    except Exception:  # noqa: BLE001 - a malformed form has no token; the request is refused below
        return None
    try:
        value: Any = form.get(FIELD)
        return value if isinstance(value, str) else None
    finally:
        await form.close()
