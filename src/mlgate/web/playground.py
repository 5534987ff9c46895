"""The playground: ``/ui/`` lists the models, ``/ui/models/{name}`` lets anyone try one in the browser.

Only the models the caller may use are listed or shown (``may_use``): in a browser, which sends no
credentials, those open to anonymous callers; any other name gets the same page as an unknown model. The
page's script (``static/apikey.js``) then asks for the page again with the tab's API key or, for a user signed
in to the admin, a short-lived token of that session (``mlgate.web.admin.playground``), and shows what that
caller may use.

Pages are rendered on the server by Jinja2 with autoescaping on (a label or description holding HTML
shows as text). The page's own script (``static/playground.js``, no CDN, no build step) builds the V2
request from the form and sends it to the ordinary ``POST /v2/models/{name}/versions/{version}/infer``
route with ``fetch``. Every page carries a Content-Security-Policy that allows scripts, styles and
requests from this origin only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from mlgate import __version__
from mlgate.errors import ModelNotFound, ModelVersionNotFound
from mlgate.model.manifest import is_valid_name
from mlgate.protocols.security import may_use
from mlgate.protocols.state import server_state
from mlgate.web.admin import PLAYGROUND_TOKEN_URL
from mlgate.web.forms import model_page, model_rows

__all__ = ["install_playground"]

HERE = Path(__file__).parent
STATIC_URL = "/ui/static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

templates = Jinja2Templates(env=jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
))


def _render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    settings = server_state(request).settings
    admin_token_url = PLAYGROUND_TOKEN_URL if settings.admin_enabled else ""
    response = templates.TemplateResponse(
        request, template, {"mlgate_version": __version__, "static": STATIC_URL, "admin_token_url": admin_token_url,
                            "pending": False, **context},
        status_code=status_code, headers=SECURITY_HEADERS,
    )
    assert isinstance(response, HTMLResponse)
    return response


router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def model_list(request: Request) -> HTMLResponse:
    """The playground's list of the models the caller may use."""
    plane = server_state(request).dataplane
    rows = [row for row in model_rows(plane.registry) if await may_use(request, row.name)]
    return _render(request, "models.html", rows=rows, title="Models")


@router.get("/models/{model_name}", response_class=HTMLResponse)
async def model_detail(request: Request, model_name: str, version: str | None = None) -> HTMLResponse:
    """A model's playground page (200).

    A model this request may not see (it does not exist, or is closed to a request without credentials, as a
    browser's navigation is) answers 200 with a page that the playground's script completes: it asks again
    with the tab's API key or the admin session's token and shows the model, or says "Not found" itself. So a
    deep link to a closed model works, and a closed model looks exactly like a missing one to a caller who may
    not use it. 404 (the not-found page) for a request that sent credentials, for a name no model can have, and
for a version that a model the caller sees does not have.
    """
    plane = server_state(request).dataplane
    try:
        if not await may_use(request, model_name):
            raise ModelNotFound(model_name)  # a model the caller may not use looks like one that does not exist
        page = model_page(plane.registry, model_name, version)
    except (ModelNotFound, ModelVersionNotFound) as exc:
        pending = (isinstance(exc, ModelNotFound) and "authorization" not in request.headers
                   and is_valid_name(model_name))
        return _render(request, "not_found.html", status_code=200 if pending else 404, message=exc.message,
                       title="Not found", pending=pending, model_name=model_name)
    return _render(request, "model.html", page=page, title=page.name)


def install_playground(app: FastAPI) -> None:
    """Add the ``/ui`` pages and their static files to ``app``."""
    app.include_router(router)
    app.mount(STATIC_URL, StaticFiles(directory=HERE / "static"), name="ui-static")
