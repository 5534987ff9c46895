"""``create_app(settings)``: the ASGI application, with its lifespan, routes, middleware and error handlers.

Middleware, outermost first: with tracing on only, the server span of each request (``mlgate.edge.tracing``)
-> the edge (``mlgate.edge.middleware``: request id and access log, client address,
body limit, then the response's deprecation, rate-limit, security and request-id headers) -> FastAPI's own
stack with CORS when origins are configured, where the error handlers of ``mlgate.protocols.errors`` answer
every error. The inference routes are served by the edge itself (``mlgate.edge.fast_path``) unless CORS
is configured. Routes check their callers with ``mlgate.protocols.security`` (authenticate -> authorize ->
rate limit). The lifespan also serves the V2 protocol over gRPC on ``grpc_port`` (``mlgate.protocols.grpc``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mlgate import __version__, tracing
from mlgate.api import auth, predictions, usage
from mlgate.api import catalog as catalog_api
from mlgate.api import jobs as jobs_api
from mlgate.api import metrics as metrics_routes
from mlgate.api import repository as repository_ext
from mlgate.api.versioning import include_versioned
from mlgate.auth.client import ClientAddressResolver
from mlgate.edge.body_limit import BodyLimit
from mlgate.edge.deprecation import DeprecationHeaders
from mlgate.edge.fast_path import FastPath
from mlgate.edge.middleware import EdgeMiddleware
from mlgate.edge.security_headers import SecurityHeaders
from mlgate.edge.tracing import TracingMiddleware
from mlgate.inference.dataplane import Stopping
from mlgate.inference.engine import InferenceEngine
from mlgate.inference.registry import ModelRegistry
from mlgate.lifespan import serve_state
from mlgate.metrics import EngineMetrics
from mlgate.protocols import openai, v1, v2
from mlgate.protocols.errors import install_error_handlers
from mlgate.protocols.grpc import serve_grpc
from mlgate.protocols.routes import InferenceRoute, openapi_paths
from mlgate.protocols.state import SERVER_KEY, STATE_KEY, ServerState
from mlgate.settings import Settings
from mlgate.types import ErrorBody
from mlgate.web import install_web
from mlgate.web.admin import install_admin
from mlgate.web.openapi import ModelSchemas

__all__ = ["INFERENCE_ROUTES", "create_app"]

INFERENCE_ROUTES: list[InferenceRoute] = [*v2.ROUTES, *v1.ROUTES, *openai.ROUTES]
"""Every inference operation, once: V2 infer, V1 predict, OpenAI embeddings (see ``mlgate.protocols.routes``)."""

log = structlog.get_logger("mlgate.app")

DESCRIPTION = """\
Trained models behind the KServe V2 Open Inference Protocol and the KServe V1 / TF-Serving REST API, and
embedding models behind OpenAI's `POST /v1/embeddings`.

Every error is JSON: `{"error": "...", "code": "...", "field": "..."}`. Every response carries `X-Request-ID`.

Try every model in the browser in the [playground](/ui/).
An inference request may carry `X-Request-Timeout-Ms` (milliseconds) to shorten the model's timeout (504 past it).
"""


class MlgateApp(FastAPI):
    """FastAPI behind ``edge`` (``mlgate.edge.middleware``): every HTTP request passes the edge first, then
    FastAPI's own stack (its native telemetry, error middleware, routes), so every response, a 500 of an
    unexpected error too, carries what the edge adds. The edge answers the inference routes itself."""

    edge: Callable[[ASGIApp], ASGIApp] | None = None
    _edge_app: ASGIApp | None = None
    server: ServerState | None = None
    """The lifespan's state while it runs: handed to each request in its scope (``SERVER_KEY``)."""
    stopping: Stopping
    """Set by the process's stop signal (``mlgate.server``): readiness turns off while serving goes on."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.edge is None:
            await super().__call__(scope, receive, send)
            return
        if self._edge_app is None:
            self._edge_app = self.edge(super().__call__)
        scope["app"] = self
        if self.server is not None:
            scope[SERVER_KEY] = self.server
        await self._edge_app(scope, receive, send)


def create_app(settings: Settings | None = None) -> MlgateApp:
    """Build the app. Models load in the lifespan (``mlgate.lifespan``), so the app is importable without
    touching disk; the lifespan's ``ServerState`` is ``app.state.mlgate`` while it runs."""
    settings = settings or Settings()
    metrics = EngineMetrics()  # its own CollectorRegistry: apps (and tests) never share series
    registry = ModelRegistry(hooks=[InferenceEngine(settings, metrics)])
    stopping = Stopping()

    @asynccontextmanager
    async def lifespan(app: MlgateApp) -> AsyncIterator[None]:
        async with serve_state(settings, registry, metrics, stopping) as state:
            setattr(app.state, STATE_KEY, state)
            app.server = state
            try:
                async with serve_grpc(state):  # the V2 protocol over gRPC on grpc_port (0: none)
                    yield
            finally:
                app.server = None

    app = MlgateApp(title="mlgate", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                    docs_url=None, redoc_url=None, openapi_url="/openapi.json" if settings.public_docs else None)
    app.stopping = stopping
    _include_routes(app, settings)
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_credentials=settings.cors_allow_credentials,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "X-Model-Version", "Retry-After", "RateLimit-Limit",
                                           "RateLimit-Remaining", "RateLimit-Reset"])
    # The edge serves the inference routes itself unless CORS is configured (its middleware must see them).
    fast_path = None if settings.cors_origins else FastPath(INFERENCE_ROUTES)
    app.edge = lambda stack: EdgeMiddleware(
        stack, body_limit=BodyLimit(settings.max_body_bytes, path_limits={
            "/api/": (settings.registry_max_upload_bytes, "registry_max_upload_bytes"),
            "/admin/models/push": (settings.registry_max_upload_bytes, "registry_max_upload_bytes")}),
        resolver=ClientAddressResolver(settings.trusted_proxies),
        security_headers=SecurityHeaders(hsts_max_age_s=settings.hsts_max_age_s),
        deprecation=DeprecationHeaders({
            v: (d.deprecated, d.sunset) for v, d in settings.deprecated_api_versions.items()}),
        access_log=settings.access_log, fast_path=fast_path)
    if tracing.configure(settings):  # off: no middleware at all (docs/operations.md, "Tracing")
        edge = app.edge
        app.edge = lambda stack: TracingMiddleware(edge(stack))
    _document(app, registry)
    return app


def _include_routes(app: FastAPI, settings: Settings) -> None:
    """Every route, each once: inference, metadata, management REST (behind security), web pages."""
    app.include_router(v2.router)
    app.include_router(v1.router)
    app.router.routes.extend(INFERENCE_ROUTES)
    if settings.metrics != "off":
        app.include_router(metrics_routes.router)
    if settings.registry_api:  # off: models still serve, the catalog's REST API is gone
        app.include_router(repository_ext.router)
        include_versioned(app, catalog_api.router)
        include_versioned(app, predictions.router)
    app.include_router(auth.router)
    include_versioned(app, jobs_api.router)  # inference jobs (mlgate.jobs)
    include_versioned(app, usage.router)  # admins only: usage from the prediction log
    install_web(app, docs=settings.public_docs)
    install_admin(app, settings)
    if settings.public_docs:
        @app.get("/", include_in_schema=False)
        async def root() -> RedirectResponse:
            return RedirectResponse("/docs")


def _document(app: FastAPI, registry: ModelRegistry) -> None:
    """``/openapi.json``: FastAPI's routes, the inference routes from their own ``OpenAPIOperation``s, and
    one typed inference route per loaded model open to anonymous callers (``ModelSchemas``)."""

    def base_openapi() -> dict[str, Any]:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        paths, models = openapi_paths(app.routes)
        schema.setdefault("paths", {}).update(paths)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in models.values():
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body.pop("$defs", {}))
            components[model.__name__] = body
        components.setdefault("ErrorBody", ErrorBody.model_json_schema())
        schema["components"].setdefault("securitySchemes", {}).setdefault(
            "HTTPBearer", {"type": "http", "scheme": "bearer"})
        return schema

    def public_model(name: str) -> bool:
        # /openapi.json is public: it names only the models open to anonymous callers.
        state = getattr(app.state, STATE_KEY, None)
        return isinstance(state, ServerState) and state.security.policy.open_to_anonymous(name)

    model_schemas = ModelSchemas(base_openapi, registry, visible=public_model)

    def openapi() -> dict[str, Any]:
        app.openapi_schema = model_schemas.document()
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
