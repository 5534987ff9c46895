"""``create_app(settings)``: the ASGI application, with its lifespan, routes, middleware and error handlers.

Middleware, outermost first: the edge (``mlgate.edge.middleware``: request id and access log, client address,
body limit, then the response's deprecation, rate-limit, security and request-id headers) -> FastAPI's own
stack with CORS when origins are configured, where the error handlers of ``mlgate.protocols.errors`` answer
every error. The inference routes are served by the edge itself (``mlgate.edge.fast_path``) unless CORS
is configured. Routes check their callers with ``mlgate.protocols.security`` (authenticate -> authorize ->
rate limit).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mlgate import __version__
from mlgate.api import auth, predictions, usage
from mlgate.api import catalog as catalog_api
from mlgate.api import metrics as metrics_routes
from mlgate.api import repository as repository_ext
from mlgate.api.versioning import include_versioned
from mlgate.auth.authenticator import AuthMetrics
from mlgate.auth.client import ClientAddressResolver
from mlgate.auth.service import build_security, ensure_first_admin, registry_policies
from mlgate.catalog.control import ControlPlane
from mlgate.db.engine import Database
from mlgate.db.migrate import upgrade
from mlgate.edge.body_limit import BodyLimit
from mlgate.edge.deprecation import DeprecationHeaders
from mlgate.edge.fast_path import FastPath
from mlgate.edge.middleware import EdgeMiddleware
from mlgate.edge.security_headers import SecurityHeaders
from mlgate.inference.dataplane import DataPlane
from mlgate.inference.engine import InferenceEngine
from mlgate.inference.registry import ModelRegistry
from mlgate.memory import release_freed_heap
from mlgate.metrics import EngineMetrics
from mlgate.model.examples import ensure_examples
from mlgate.model.repository import group_by_name, scan_repository
from mlgate.protocols import openai, v1, v2
from mlgate.protocols.errors import install_error_handlers
from mlgate.ratelimit.limiter import RateLimitMetrics
from mlgate.settings import Settings, default_examples_dir
from mlgate.web import install_web
from mlgate.web.admin import install_admin
from mlgate.web.openapi import ModelSchemas

__all__ = ["create_app"]

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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.edge is None:
            await super().__call__(scope, receive, send)
            return
        if self._edge_app is None:
            self._edge_app = self.edge(super().__call__)
        scope["app"] = self
        await self._edge_app(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Models load in the lifespan, so the app is importable without touching disk."""
    settings = settings or Settings()
    metrics = EngineMetrics()  # its own CollectorRegistry: apps (and tests) never share series
    registry = ModelRegistry(hooks=[InferenceEngine(settings, metrics)])
    plane = DataPlane(settings, registry, metrics)
    auth_metrics, limit_metrics = AuthMetrics(metrics.registry), RateLimitMetrics(metrics.registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.dataplane = plane
        database_url = settings.effective_database_url
        if settings.database_auto_upgrade:
            await anyio.to_thread.run_sync(upgrade, database_url)
        database = Database(database_url)
        app.state.database = database
        security = build_security(settings, database, lookup=registry_policies(registry), names=registry.names,
                                  auth_metrics=auth_metrics, limit_metrics=limit_metrics)
        app.state.security = security
        await ensure_first_admin(settings, security.store)
        root = settings.model_repository
        if root is None:
            root = default_examples_dir()
            ensure_examples(root)
        log.info("loading model repository", repository=str(root))
        sources = scan_repository(root)
        await registry.load(sources)
        # -- registry: database models, rollouts, prediction log, replicas --
        control = ControlPlane(settings, database, plane, metrics.registry)
        control.folder_sources = group_by_name(sources)
        control.change_listeners.append(security.authenticator.clear_cache)  # identity changes of other replicas
        app.state.control = control
        await control.start()
        plane.loaded = True
        ready = sum(handle.ready for handle in registry)
        log.info("models loaded", ready=ready, total=len(list(registry)))
        # -- inference engine: keep the cyclic GC off the objects of start-up (frameworks, models) --
        release_freed_heap()  # collects, and gives the heap that loading freed back to the system
        gc.freeze()
        try:
            yield
        finally:
            await control.close()
            await registry.unload_all()
            await security.limits.aclose()
            await database.dispose()

    app = MlgateApp(title="mlgate", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json" if settings.public_docs else None)
    app.state.dataplane = plane
    app.state.settings = settings
    app.include_router(v2.router)
    app.include_router(v1.router)
    # -- inference engine: V2 infer and V1 predict are served by plain Starlette routes ahead of the FastAPI
    # routes above (which stay for the OpenAPI document): FastAPI's per-request dependency resolution and
    # router walk were ~30 % of the CPU of a request (benchmarks/RESULTS.md, "Perf pass 2") --
    app.router.routes[0:0] = [*v2.ROUTES, *v1.ROUTES, *openai.ROUTES]
    # -- inference engine routes (metrics, embeddings) --
    app.include_router(openai.router)
    if settings.metrics != "off":
        app.include_router(metrics_routes.router)

    # -- registry routes (behind security; registry_api=False turns them off, models still serve) --
    if settings.registry_api:
        app.include_router(repository_ext.router)
        include_versioned(app, catalog_api.router)
        include_versioned(app, predictions.router)

    # -- security routes --
    app.include_router(auth.router)
    include_versioned(app, usage.router)  # admins only: usage from the prediction log

    # -- web routes --
    install_web(app, docs=settings.public_docs)
    install_admin(app, settings)

    if settings.public_docs:
        @app.get("/", include_in_schema=False)
        async def root() -> RedirectResponse:
            return RedirectResponse("/docs")

    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_credentials=settings.cors_allow_credentials,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "X-Model-Version", "Retry-After", "RateLimit-Limit",
                                           "RateLimit-Remaining", "RateLimit-Reset"])
    # -- inference engine: the inference routes are served by the edge itself unless CORS must see them --
    fast_path = None if settings.cors_origins else FastPath([*v2.ROUTES, *v1.ROUTES, *openai.ROUTES])
    app.edge = lambda stack: EdgeMiddleware(
        stack, body_limit=BodyLimit(settings.max_body_bytes, path_limits={
            "/api/": (settings.registry_max_upload_bytes, "registry_max_upload_bytes"),
            "/admin/models/push": (settings.registry_max_upload_bytes, "registry_max_upload_bytes")}),
        resolver=ClientAddressResolver(settings.trusted_proxies),
        security_headers=SecurityHeaders(hsts_max_age_s=settings.hsts_max_age_s),
        deprecation=DeprecationHeaders({
            v: (d.deprecated, d.sunset) for v, d in settings.deprecated_api_versions.items()}),
        access_log=settings.access_log, fast_path=fast_path)

    def base_openapi() -> dict[str, Any]:
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (*v2.OPENAPI_MODELS, *v1.OPENAPI_MODELS, *openai.OPENAPI_MODELS):
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body.pop("$defs", {}))
            components[model.__name__] = body
        return schema

    def public_model(name: str) -> bool:
        # /openapi.json is public: it names only the models open to anonymous callers.
        security = getattr(app.state, "security", None)
        return security is not None and security.policy.open_to_anonymous(name)

    # The document gains one typed inference route per loaded model, rebuilt when the models change.
    model_schemas = ModelSchemas(base_openapi, registry, visible=public_model)

    def openapi() -> dict[str, Any]:
        app.openapi_schema = model_schemas.document()
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
