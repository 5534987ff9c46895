"""``create_app(settings)``: the ASGI application, with its lifespan, routes, middleware and error handlers.

Middleware, outermost first: request id (and access log) -> body limit -> FastAPI's own stack, where the
error handlers of ``mlgate.protocols.errors`` answer every error.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import structlog
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse

from mlgate import __version__
from mlgate.dataplane import DataPlane
from mlgate.db.engine import Database
from mlgate.db.migrate import upgrade
from mlgate.engine import InferenceEngine
from mlgate.examples import ensure_examples
from mlgate.metrics import EngineMetrics
from mlgate.middleware.body_limit import BodyLimitMiddleware
from mlgate.middleware.request_id import RequestIdMiddleware
from mlgate.protocols import metrics as metrics_routes
from mlgate.protocols import openai, v1, v2
from mlgate.protocols.errors import install_error_handlers
from mlgate.registry import ModelRegistry
from mlgate.repository import scan_repository
from mlgate.settings import Settings, default_examples_dir
from mlgate.web import install_web
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


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Models load in the lifespan, so the app is importable without touching disk."""
    settings = settings or Settings()
    metrics = EngineMetrics()  # its own CollectorRegistry: apps (and tests) never share series
    registry = ModelRegistry(hooks=[InferenceEngine(settings, metrics)])
    plane = DataPlane(settings, registry, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.dataplane = plane
        database_url = settings.effective_database_url
        if settings.database_auto_upgrade:
            await anyio.to_thread.run_sync(upgrade, database_url)
        database = Database(database_url)
        app.state.database = database
        root = settings.model_repository
        if root is None:
            root = default_examples_dir()
            ensure_examples(root)
        log.info("loading model repository", repository=str(root))
        await registry.load(scan_repository(root))
        plane.loaded = True
        ready = sum(handle.ready for handle in registry)
        log.info("models loaded", ready=ready, total=len(list(registry)))
        # -- inference engine: keep the cyclic GC off the objects of start-up (frameworks, models) --
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await registry.unload_all()
            await database.dispose()

    app = FastAPI(title="mlgate", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.dataplane = plane
    app.include_router(v2.router)
    app.include_router(v1.router)
    # -- inference engine routes (metrics, embeddings) --
    app.include_router(openai.router)
    if settings.metrics:
        app.include_router(metrics_routes.router)

    # -- registry routes --

    # -- security routes --

    # -- web routes --
    install_web(app)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware, access_log=settings.access_log)

    def base_openapi() -> dict[str, Any]:
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (*v2.OPENAPI_MODELS, *v1.OPENAPI_MODELS, *openai.OPENAPI_MODELS):
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body.pop("$defs", {}))
            components[model.__name__] = body
        return schema

    # The document gains one typed inference route per loaded model, rebuilt when the models change.
    model_schemas = ModelSchemas(base_openapi, registry)

    def openapi() -> dict[str, Any]:
        app.openapi_schema = model_schemas.document()
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
