"""The base of the admin's own pages (sqladmin ``BaseView``s): role checks, rendering, one-shot notices.

A page handler reads its form, calls ``AuthStore`` or ``ControlPlane``, and answers with a redirect back to
its page (POST/redirect/GET) carrying a notice in the session, or re-renders the page with the error of a
refused change (the ``MlgateError``'s message and status). Templates are autoescaped.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqladmin import BaseView

from mlgate.web.admin.access import RoleGate
from mlgate.web.admin.context import AdminContext

__all__ = ["Page", "form_text"]

_NOTICE = "notice"


def form_text(form: Any, name: str) -> str:
    """A text field of a submitted form, stripped ('' when absent or a file)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


class Page(RoleGate, BaseView):
    """An admin page of ours (not a table): role-gated, rendered from a template with the session's notice."""
    context: ClassVar[AdminContext]
    """Set per app by ``install_admin`` (each app gets its own subclasses of the views)."""

    async def render(self, request: Request, template: str, status_code: int = 200, **values: Any) -> Response:
        """Render ``template`` with ``values``, the pending notice and ``Cache-Control: no-store``."""
        values.setdefault("notice", request.session.pop(_NOTICE, None))
        values.setdefault("error", None)
        response: Response = await self.templates.TemplateResponse(request, template, values, status_code)
        response.headers["Cache-Control"] = "no-store"
        return response

    @staticmethod
    def back(request: Request, route: str, notice: str) -> RedirectResponse:
        """Redirect (303) to the page ``route`` with ``notice`` shown once there."""
        request.session[_NOTICE] = notice
        return RedirectResponse(request.url_for(f"admin:view-{route}"), status_code=303)
