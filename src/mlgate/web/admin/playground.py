"""The admin session carried to the playground: ``GET /admin/playground-token`` gives the signed-in user a
short-lived access token that the playground's script (``/ui/static/apikey.js``) sends as
``Authorization: Bearer``, so that a user signed in to the admin sees and calls their own models at ``/ui/``
without pasting an API key.

Why a token and not the cookie: the inference routes never take authority from a cookie (the admin cookie's
path is ``/admin``, and the routes read only the ``Authorization`` header), so no other site can make a
browser call a model with its user's rights. The token route itself is read-only and CSRF-safe: it answers
only a request carrying the header ``X-Mlgate-Playground: 1`` (a page of another origin cannot send a custom
header without a CORS preflight, which this server never grants), and refuses one whose ``Sec-Fetch-Site``
says it comes from another site; another origin could not read the answer anyway.

The token (``mlgate.auth.tokens``, a playground token) may only predict, lives ``playground_token_ttl_s``
seconds, and dies with the admin session: logout (and any change of the user's role or activation)
changes the session stamp it carries. Answers: 200 ``{"token", "token_type": "bearer", "expires_in" (s),
"username", "role"}`` for a valid admin session, 200 ``{"token": null}`` without one, 403 ``csrf_failed``
(``field``: the header) without the header or from another origin; always ``Cache-Control: no-store``.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from mlgate.protocols.errors import error_response
from mlgate.web.admin.context import AdminContext, signed_in
from mlgate.web.admin.session import SessionAuth

__all__ = ["HEADER", "TOKEN_PATH", "PlaygroundTokens"]

TOKEN_PATH = "/playground-token"
"""Under the admin's base URL (the session cookie's path): ``/admin/playground-token``."""
HEADER = "X-Mlgate-Playground"
NO_STORE = {"Cache-Control": "no-store"}


def _cross_site(request: Request) -> bool:
    """Whether the browser says this request comes from a page of another origin (``Sec-Fetch-Site``; the
    ``Host`` header is not compared: the admin never reads it, see ``links``)."""
    fetch_site = request.headers.get("sec-fetch-site")
    return fetch_site is not None and fetch_site not in ("same-origin", "none")


class PlaygroundTokens:
    """The token route (see the module); ``issue`` is its endpoint on the admin's Starlette app."""

    def __init__(self, context: AdminContext, auth: SessionAuth) -> None:
        self.context = context
        self.auth = auth

    async def issue(self, request: Request) -> Response:
        """A playground token for the admin session's user, ``{"token": null}`` without a valid session."""
        if request.headers.get(HEADER) != "1" or _cross_site(request):
            return error_response(403, f"the playground token is given only to this server's own pages (they send "
                                  f"{HEADER}: 1)", "csrf_failed", field=HEADER.lower(), headers=NO_STORE)
        if not await self.auth.authenticate(request):
            return JSONResponse({"token": None}, headers=NO_STORE)
        user = signed_in(request)
        assert user is not None  # authenticate() set it
        ttl_s = self.context.settings.playground_token_ttl_s
        token = self.context.security.tokens.issue(user.id, user.username, session_stamp=user.session_stamp,
                                                   ttl_s=ttl_s)
        return JSONResponse({"token": token, "token_type": "bearer", "expires_in": ttl_s,
                             "username": user.username, "role": user.role.value}, headers=NO_STORE)
