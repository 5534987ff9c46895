"""The admin at ``/admin/``: users, groups, API keys, models and rollouts, the logs, and the usage dashboard.

Built on sqladmin (its pages, assets served from the package, no CDN): read-only table views with filters
(``tables``) and our own pages that change things only through ``AuthStore`` and ``ControlPlane``
(``identities``, ``rollouts``). Sign-in with a session cookie (``session``), CSRF tokens on every form
(``csrf``), a role check on every view and route (``access``), the session carried to the playground as a
short-lived token (``playground``): admins see everything, deployers the model
pages and the prediction log; the dashboard is for admins. ``install_admin(app, settings)`` mounts it unless
``admin_enabled`` is false.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from jinja2 import ChoiceLoader, FileSystemLoader
from sqladmin import Admin, BaseView, ModelView
from starlette.middleware import Middleware

from mlgate.settings import Settings
from mlgate.web.admin.context import AdminContext, LazySessions
from mlgate.web.admin.csrf import csrf_field
from mlgate.web.admin.dashboard import DashboardPage
from mlgate.web.admin.headers import AdminHeadersMiddleware
from mlgate.web.admin.identities import IdentitiesPage
from mlgate.web.admin.playground import TOKEN_PATH, PlaygroundTokens
from mlgate.web.admin.rollouts import ModelsPage
from mlgate.web.admin.session import SessionAuth
from mlgate.web.admin.tables import TABLE_VIEWS, when

__all__ = ["BASE_URL", "PLAYGROUND_TOKEN_URL", "install_admin"]

BASE_URL = "/admin"
PLAYGROUND_TOKEN_URL = BASE_URL + TOKEN_PATH
"""Where the playground asks for the admin session's token (``mlgate.web.admin.playground``)."""
HERE = Path(__file__).parent
PAGES: tuple[type[BaseView], ...] = (DashboardPage, ModelsPage, IdentitiesPage)


def install_admin(app: FastAPI, settings: Settings) -> Admin | None:
    """Mount the admin on ``app`` (None when ``admin_enabled`` is false). Nothing touches the database or
    disk until the first request; the session key is read or made then."""
    if not settings.admin_enabled:
        return None
    context = AdminContext(app, settings)
    auth = SessionAuth(context, BASE_URL)
    admin = Admin(app, session_maker=LazySessions(context), base_url=BASE_URL,  # type: ignore[arg-type]
                  title="mlgate admin", templates_dir=str(HERE / "templates"), authentication_backend=auth,
                  middlewares=[Middleware(AdminHeadersMiddleware)])
    auth.templates = admin.templates
    admin.admin.add_route(TOKEN_PATH, PlaygroundTokens(context, auth).issue, methods=["GET"],
                          name="playground-token")
    admin.templates.env.globals["csrf_field"] = csrf_field
    admin.templates.env.filters["when"] = when
    # The web package's partials (the usage panel) after sqladmin's and ours.
    loader = admin.templates.env.loader
    assert loader is not None
    admin.templates.env.loader = ChoiceLoader([loader, FileSystemLoader(HERE.parent / "templates")])
    views: tuple[type[BaseView] | type[ModelView], ...] = (*PAGES, *TABLE_VIEWS)
    for view in views:
        # A subclass per app: sqladmin keeps its admin and session factory on the view class.
        admin.add_view(type(view.__name__, (view,), {"context": context}))
    return admin
