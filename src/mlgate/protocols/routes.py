"""The inference routes: one route per inference operation, documented from its own fields.

V2 infer, V1 predict and OpenAI embeddings are each ONE ``InferenceRoute``: a plain Starlette route (no FastAPI
dependency resolution on the hottest path) that the app's router holds and the edge's fast path serves
(``mlgate.edge.fast_path``). Its endpoint starts with the one security entry point
(``mlgate.protocols.security.admit``), and its ``OpenAPIOperation`` is what ``/openapi.json`` shows for it
(``openapi_paths``), so the document cannot describe a route that does not exist, nor miss one.

Refused requests are recorded here, by the layer that refuses them: an inference request admitted on a model
and then answered with an error before the data plane served it (a 429 on its rows, a body that does not
decode) goes to the prediction log through the control plane. What the data plane serves, it records itself
(``DataPlane.observers``); ``serving`` marks the request so it is never recorded twice.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mlgate.auth.caller import Action
from mlgate.errors import MlgateError
from mlgate.inference.dataplane import Call, DataPlane
from mlgate.protocols.caller import routing_key
from mlgate.protocols.state import RequestState, ServerState, request_state, server_state

__all__ = ["Endpoint", "InferenceRoute", "OpenAPIOperation", "openapi_paths", "record_refusal", "serving"]

Endpoint = Callable[[Request], Awaitable[Response]]

_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_ERRORS = {
    "400": "Malformed or invalid request; `field` says where.",
    "401": "No, or invalid, credentials (`Authorization: Bearer ...`).",
    "403": "The caller may not use this model.",
    "404": "Unknown model or version.",
    "413": "Body over the configured limit.",
    "429": "Over a rate limit or quota; see Retry-After and RateLimit-*.",
    "500": "The model failed; the log has details under X-Request-ID.",
    "503": "The model is not ready, its queue is full (Retry-After), or its worker process died.",
    "504": "No answer within the request's timeout (X-Request-Timeout-Ms).",
}


@dataclass(frozen=True)
class OpenAPIOperation:
    """How an inference route appears in ``/openapi.json`` (OpenAPI 3.1 operation object)."""

    path: str
    """The path as documented: ``/v1/models/{model_name}:predict`` where the route matches ``{model_spec}``."""
    summary: str
    tag: str
    request_model: type[BaseModel]
    response_model: type[BaseModel]
    parameters: tuple[tuple[str, str], ...]
    """``(path parameter, description)`` pairs, in path order."""
    description: str = ""

    def document(self) -> dict[str, Any]:
        """The operation object: parameters, JSON request body, 200 response and the error responses."""
        responses: dict[str, Any] = {"200": {"description": "Successful Response", "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{self.response_model.__name__}"}}}}}
        responses |= {code: {"description": text, "content": {"application/json": {"schema": _ERROR_REF}}}
                      for code, text in _ERRORS.items()}
        operation: dict[str, Any] = {
            "tags": [self.tag], "summary": self.summary,
            "operationId": f"{self.tag}_{self.path}".replace("/", "_").replace("{", "").replace("}", "")
            .replace(":", "_").replace(" ", "_").replace(".", "_").lower(),
            "parameters": [{"name": name, "in": "path", "required": True, "schema": {"type": "string"},
                            "description": text} for name, text in self.parameters],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{self.request_model.__name__}"}}}},
            "responses": responses,
            "security": [{"HTTPBearer": []}, {}],
        }
        if self.description:
            operation["description"] = self.description
        return operation


class InferenceRoute(Route):
    """A ``POST`` inference route: the only route of its operation (see the module docstring).

    ``endpoint`` must admit the request through ``mlgate.protocols.security.admit`` before anything else
    that depends on the caller; errors it raises are answered by the one error map
    (``mlgate.protocols.errors``) after the refusal, if any, is recorded.
    """

    def __init__(self, path: str, endpoint: Endpoint, operation: OpenAPIOperation) -> None:
        super().__init__(path, _recording_refusals(endpoint), methods=["POST"], include_in_schema=False)
        self.operation = operation


def _recording_refusals(endpoint: Endpoint) -> Endpoint:
    async def recorded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except MlgateError as exc:
            _record_refusal(request, exc)
            raise

    recorded.__name__ = recorded.__qualname__ = endpoint.__name__
    recorded.__doc__ = endpoint.__doc__
    return recorded


def _record_refusal(request: Request, error: MlgateError) -> None:
    record_refusal(request_state(request), server_state(request), error)


def record_refusal(state: RequestState, server: ServerState, error: MlgateError) -> None:
    """Log an error answer to an inference request admitted on a model that the data plane did not serve
    (any transport: ``state`` is the request's). Callers that were never admitted (401/403, an invalid model
    name) are not logged."""
    if not state.admitted or state.action is not Action.PREDICT or state.model is None or state.served:
        return
    latency_ms = (time.perf_counter() - state.started) * 1000 if state.started is not None else 0.0
    server.control.record_refused(state.model, state.identity, error, latency_ms, state.request_id or None)


def serving(request: Request, plane: DataPlane, name: str, version: str | None = None) -> Call:
    """``plane.serving(...)`` for this request's caller and routing key (``X-Routing-Key``, else the caller);
    the request is marked served, so its answer is logged by the data plane's observers and not again here."""
    state = request_state(request)
    state.served = True
    identity = state.identity
    return plane.serving(name, version, caller=identity, key=routing_key(request, identity))


def openapi_paths(routes: Sequence[BaseRoute]) -> tuple[dict[str, Any], Mapping[str, type[BaseModel]]]:
    """The OpenAPI path items of the ``InferenceRoute``s among ``routes``, and the models their bodies name."""
    paths: dict[str, Any] = {}
    models: dict[str, type[BaseModel]] = {}
    for route in routes:
        if isinstance(route, InferenceRoute):
            operation = route.operation
            paths.setdefault(operation.path, {})["post"] = operation.document()
            models[operation.request_model.__name__] = operation.request_model
            models[operation.response_model.__name__] = operation.response_model
    return paths, models
