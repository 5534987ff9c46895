"""API docs that work offline: Swagger UI at ``/docs`` and ReDoc at ``/redoc``.

Their JavaScript and CSS come from the ``fastapi-offline`` package (swagger-ui-dist and redoc builds
installed with it) and are served from ``/docs/assets``: nothing is fetched from a CDN, so the docs work
on a machine with no internet access.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_URL", "DOCS_HEADERS", "assets_dir", "install_docs"]

ASSETS_URL = "/docs/assets"

# The pages may load only from this origin, so nothing leaves the machine even where a bundle links out
# (ReDoc's sidebar shows a logo from cdn.redoc.ly: the browser refuses it). Both UIs need inline scripts
# and styles, ReDoc a blob: worker.
DOCS_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}


def _with_headers(response: HTMLResponse) -> HTMLResponse:
    response.headers.update(DOCS_HEADERS)
    return response


def assets_dir() -> Path:
    """The folder of swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js and favicon.png."""
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI) -> None:
    """Add ``/docs``, ``/docs/oauth2-redirect``, ``/redoc`` and the assets to ``app``.

    The app must be built with ``docs_url=None, redoc_url=None`` so FastAPI's CDN pages are not there too.
    """
    router = APIRouter(include_in_schema=False)
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect = "/docs/oauth2-redirect"

    @router.get("/docs")
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _with_headers(get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=f"{root}{oauth2_redirect}",
            # No online validator badge: it would send the document to validator.swagger.io.
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        ))

    @router.get(oauth2_redirect)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get("/redoc")
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _with_headers(get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        ))

    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")
