"""``TracingMiddleware``: the server span of each HTTP request, outside the edge (``mlgate.tracing``).

Installed only while tracing is on (``create_app``), so it costs nothing otherwise. The span is named
``HTTP <method> <route>`` (the route's template, e.g. ``/v2/models/{model_name}/infer``; the path when no
route matched) and carries ``http.request.method``, ``url.path``, ``http.route``,
``http.response.status_code``, ``mlgate.request_id`` and, for a model's route, ``mlgate.model`` and
``mlgate.model_version`` (the version that answered: the data plane's ``Call`` sets both). A ``traceparent`` header sent
by the caller makes it a child of the caller's span. A 5xx answer sets the span's status to error. Health
checks and ``/metrics`` get no span (``UNTRACED``).
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlgate import tracing

__all__ = ["TracingMiddleware"]


UNTRACED = ("/v2/health/", "/metrics")
"""Paths without spans: the balancers' and Prometheus's polls (several a second, nothing to follow)."""


def _header(headers: Any, name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _route(scope: Scope) -> str | None:
    """The template of the route that served the request: the one FastAPI selected (an included router's
    route carries its prefix there: ``/api/v1`` + ``/jobs``), else the one the fast path or Starlette set."""
    context = (scope.get("fastapi") or {}).get("effective_route_context")
    starlette_route = getattr(context, "starlette_route", None)
    path = getattr(starlette_route, "path_format", None) or getattr(context, "path_format", None)
    if path:
        return str(path)
    path = getattr(scope.get("route"), "path_format", None)
    return str(path) if path else None


class TracingMiddleware:
    """Pure ASGI: one server span per HTTP request around ``app`` (the module docstring says what it carries)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not tracing.active() or scope["path"].startswith(UNTRACED):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        answer: dict[str, Any] = {"status": 500}

        async def send_traced(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                answer.update(status=message["status"], request_id=_header(headers, b"x-request-id"))
            await send(message)

        with tracing.span(f"HTTP {method}", kind="server", traceparent=_header(scope["headers"], b"traceparent"),
                          attributes={"http.request.method": method, "url.path": scope["path"]}) as span:
            try:
                await self.app(scope, receive, send_traced)
            finally:
                route = _route(scope)
                if route:
                    span.update_name(f"HTTP {method} {route}")
                    span.set_attribute("http.route", route)
                model = (scope.get("path_params") or {}).get("model_name")
                if model and not span.attributes.get("mlgate.model"):  # refused before the data plane
                    span.set_attribute("mlgate.model", model)
                if answer.get("request_id"):
                    span.set_attribute("mlgate.request_id", answer["request_id"])
                span.set_attribute("http.response.status_code", answer["status"])
                if answer["status"] >= 500:
                    from opentelemetry.trace import StatusCode

                    span.set_status(StatusCode.ERROR)
