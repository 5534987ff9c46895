"""The one place where errors become HTTP responses: ``{"error": ..., "code": ..., "field": ...}``.

MlgateError carries its status and code. Starlette's own HTTP errors (unknown route, wrong method) get
the same body. Anything else is a bug: the caller gets a generic 500 with no detail, and the log gets the
traceback under the request id.
"""

from __future__ import annotations

import math
import time

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlgate.auth.caller import Action, Caller
from mlgate.catalog.control import ControlPlane
from mlgate.codecs.json import dumps
from mlgate.codecs.v2 import validation_error
from mlgate.errors import MlgateError, Unauthenticated
from mlgate.protocols.security import STATE_STARTED
from mlgate.types import ErrorBody

__all__ = ["ERROR_RESPONSES", "error_response", "install_error_handlers", "mlgate_error_response",
           "unexpected_error_response"]

log = structlog.get_logger("mlgate.errors")

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "Malformed or invalid request; `field` says where."},
    401: {"model": ErrorBody, "description": "No, or invalid, credentials (`Authorization: Bearer ...`)."},
    403: {"model": ErrorBody, "description": "The caller may not do this (or see this model)."},
    404: {"model": ErrorBody, "description": "Unknown model or version."},
    413: {"model": ErrorBody, "description": "Body over the configured limit."},
    429: {"model": ErrorBody, "description": "Over a rate limit or quota; see Retry-After and RateLimit-*."},
    500: {"model": ErrorBody, "description": "The model failed; the log has details under X-Request-ID."},
    503: {"model": ErrorBody, "description": "The model is not ready, its queue is full (Retry-After), or its "
          "worker process died."},
    504: {"model": ErrorBody, "description": "No answer within the request's timeout (X-Request-Timeout-Ms)."},
}


def error_response(status: int, message: str, code: str, field: str | None = None,
                   retry_after_s: float | None = None, headers: dict[str, str] | None = None) -> Response:
    """The JSON error response; ``field`` is null when the error is about the request as a whole."""
    body = {"error": message, "code": code, "field": field}
    headers = dict(headers or {})
    if retry_after_s:
        headers["Retry-After"] = str(math.ceil(retry_after_s))
    return Response(dumps(body), status_code=status, media_type="application/json", headers=headers)


def _log_refused(request: Request, status: int) -> None:
    """Put an error answer to an inference request into the prediction log (``ControlPlane.record_refused``):
    a 429 or a bad request on a POST whose caller was authorized to predict with a model (``security.authorize``
    sets ``rate_model``) that the data plane did not serve. Unauthorized callers (401/403), unknown model names
    and other routes (metadata, the registry API) are never logged."""
    state = request.scope.get("state", {})
    model = state.get("rate_model")
    control = getattr(request.app.state, "control", None)
    if (not isinstance(model, str) or state.get("authorized_action") != Action.PREDICT or request.method != "POST"
            or not isinstance(control, ControlPlane)):
        return
    caller = state.get("caller")
    started = state.get(STATE_STARTED)
    latency_ms = (time.perf_counter() - started) * 1000 if isinstance(started, float) else 0.0
    request_id = state.get("request_id")
    control.record_refused(model, caller.actor if isinstance(caller, Caller) and not caller.anonymous else None,
                           status, latency_ms, request_id if isinstance(request_id, str) else None)


def mlgate_error_response(request: Request, exc: MlgateError) -> Response:
    """The response to a MlgateError (and its prediction-log record when it refuses an inference request)."""
    if 400 <= exc.status < 600:
        _log_refused(request, int(exc.status))
    if exc.status >= 500:
        log.warning("request failed", code=exc.code, status=int(exc.status), path=request.url.path)
    headers = {"WWW-Authenticate": exc.challenge} if isinstance(exc, Unauthenticated) else None
    return error_response(int(exc.status), exc.message, exc.code, exc.field, exc.retry_after_s, headers)


async def _mlgate_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MlgateError)
    return mlgate_error_response(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    return error_response(exc.status_code, message, code, headers=dict(exc.headers or {}))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    err = validation_error(exc.errors())
    _log_refused(request, 400)
    return error_response(400, err.message, err.code, err.field)


def unexpected_error_response(request: Request, exc: Exception) -> Response:
    """The generic 500 of an error that is a bug; the traceback goes to the log under the request id."""
    log.error("unhandled error", path=request.url.path, exc_info=exc)
    return error_response(500, "internal server error; the server log has the details under this "
                          "request's X-Request-ID", "internal_error")


async def _unexpected(request: Request, exc: Exception) -> Response:
    return unexpected_error_response(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MlgateError, _mlgate_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
