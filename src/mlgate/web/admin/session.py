"""Signing in to the admin: username and password checked by ``AuthStore``, then a signed session cookie.

The cookie (``mlgate_admin``, path ``/admin``) is HttpOnly and SameSite=Lax, Secure when
``admin_cookie_secure`` is set, and expires after ``admin_session_ttl_s``. It holds only the user id, the
user's session stamp and the CSRF token, signed with ``admin_session_secret`` or a key generated once into
``data_dir/admin-session-secret`` (mode 0600). Each request reads the user from the database again, so a
deactivated or demoted user is out at once; and the session ends when the user's session stamp changed
(``AuthStore.end_sessions`` at logout, any change of the user's role, activation or password), so a copied
cookie dies with the logout instead of living out its ``admin_session_ttl_s``. Only admins and deployers
may sign in (``ADMIN_ROLES``); the login form is CSRF-checked like every other form, and password attempts
share the token route's rate limit (``login_rate_limit`` per client address; over it: 429 with Retry-After).
"""

from __future__ import annotations

import hmac
import math
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqladmin.authentication import AuthenticationBackend
from starlette.datastructures import Secret
from starlette.middleware import Middleware

from mlgate.auth import UserInfo
from mlgate.auth.tokens import load_or_create_secret
from mlgate.errors import MlgateError
from mlgate.protocols.security import client_address
from mlgate.settings import Settings
from mlgate.web.admin.context import ADMIN_ROLES, AdminContext, set_signed_in
from mlgate.web.admin.csrf import CsrfMiddleware, csrf_token
from mlgate.web.admin.links import RelativeLinks

__all__ = ["COOKIE", "SessionAuth"]

COOKIE = "mlgate_admin"
SECRET_FILE = "admin-session-secret"
_USER_ID = "uid"
_STAMP = "stamp"


class SessionSecret(Secret):
    """The signing key, read (or made) when the session middleware is built, at the first admin request."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("")
        self.settings = settings

    def __str__(self) -> str:
        if self.settings.admin_session_secret is not None:
            return self.settings.admin_session_secret.get_secret_value()
        return load_or_create_secret(self.settings.data_dir, SECRET_FILE, "MLGATE_ADMIN_SESSION_SECRET")


class SessionAuth(AuthenticationBackend):
    """sqladmin's authentication hooks over ``AuthStore``; adds the session and CSRF middleware."""

    def __init__(self, context: AdminContext, base_url: str) -> None:
        settings = context.settings
        super().__init__(SessionSecret(settings),  # type: ignore[arg-type]
                         session_cookie=COOKIE, max_age=settings.admin_session_ttl_s,
                         path=base_url, same_site="lax", https_only=settings.admin_cookie_secure)
        self.middlewares.insert(0, Middleware(RelativeLinks))
        self.middlewares.append(Middleware(CsrfMiddleware))
        self.context = context
        self.templates: Any = None
        """sqladmin's templates, set by ``install_admin`` once the admin exists."""

    async def login(self, request: Request) -> Response | bool:
        """Check the login form (rate-limited per client address); a session cookie on success."""
        form = await request.form()
        username, password = form.get("username"), form.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            return False
        security = self.context.security
        if self.context.settings.rate_limit_enabled:
            try:  # the same budget of password attempts per client address as POST /api/v1/auth/token
                await security.limits.consume_login(self.context.settings.login_rate_limit, client_address(request))
            except MlgateError as exc:
                response = await self._login_page(request, int(exc.status), exc.message)
                if exc.retry_after_s:
                    response.headers["Retry-After"] = str(math.ceil(exc.retry_after_s))
                return response
        user = await self.context.store.check_password(username, password)
        if user is None:
            return False
        if user.role not in ADMIN_ROLES:
            request.session.clear()
            return await self._login_page(request, 403, "This account may not use the admin (it needs the admin "
                                          "or deployer role).")
        request.session.clear()  # a fresh session (and CSRF token) for the signed-in user
        request.session[_USER_ID] = user.id
        request.session[_STAMP] = user.session_stamp
        csrf_token(request)
        return True

    async def _login_page(self, request: Request, status_code: int, error: str) -> Response:
        response: Response = await self.templates.TemplateResponse(
            request, "sqladmin/login.html", {"error": error}, status_code=status_code)
        return response

    async def logout(self, request: Request) -> Response | bool:
        """End the session here and on the server side (copied cookies stop working)."""
        user_id = request.session.get(_USER_ID)
        if isinstance(user_id, int) and await self._current(request, user_id) is not None:
            # Ends this user's sessions everywhere, copies of this cookie included (it stays validly signed).
            await self.context.store.end_sessions(user_id)
        request.session.clear()
        return False

    async def _current(self, request: Request, user_id: int) -> UserInfo | None:
        """The session's user while the session is valid: active, allowed in, and the same session stamp."""
        user = await self.context.store.get_user_by_id(user_id)
        if user is None or not user.is_active or user.role not in ADMIN_ROLES:
            return None
        stamp = request.session.get(_STAMP)
        if not isinstance(stamp, str) or not hmac.compare_digest(stamp.encode(), user.session_stamp.encode()):
            return None
        return user

    async def authenticate(self, request: Request) -> Response | bool:
        """Whether the request's session belongs to an active user whose session stamp still matches."""
        user_id = request.session.get(_USER_ID)
        if not isinstance(user_id, int):
            return False
        user = await self._current(request, user_id)
        if user is None:
            request.session.clear()
            return False
        set_signed_in(request, user)
        return True

    async def get_user_id(self, request: Request) -> int | None:
        """The session's user id, or None."""
        user_id = request.session.get(_USER_ID)
        return user_id if isinstance(user_id, int) else None
