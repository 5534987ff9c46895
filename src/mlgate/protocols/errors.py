"""The one place where errors become HTTP responses: ``{"error": ..., "code": ..., "field": ...}``.

MlgateError carries its status and code. Starlette's own HTTP errors (unknown route, wrong method) get
the same body. Anything else is a bug: the caller gets a generic 500 with no detail, and the log gets the
traceback under the request id.
"""

from __future__ import annotations

import math

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlgate.codecs.json import dumps
from mlgate.codecs.v2 import validation_error
from mlgate.errors import MlgateError, Unauthenticated
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


def mlgate_error_response(request: Request, exc: MlgateError) -> Response:
    """The response to a MlgateError: its status, code, message and field; ``Retry-After`` when it has one, the
    authentication challenge on a 401. Nothing else happens here (refusals are recorded where they happen)."""
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
    return error_response(400, err.message, err.code, err.field)


def unexpected_error_response(request: Request, exc: Exception) -> Response:
    """The generic 500 of an error that is a bug; the traceback goes to the log under the request id."""
    log.error("unhandled error", path=request.url.path, exc_info=exc)
    return error_response(500, "internal server error; the server log has the details under this "
                          "request's X-Request-ID", "internal_error")


async def _unexpected(request: Request, exc: Exception) -> Response:
    return unexpected_error_response(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    """Answer MlgateError, Starlette's HTTP errors, FastAPI's validation errors and any other exception with
    the one JSON error body (the generic 500 for the last)."""
    app.add_exception_handler(MlgateError, _mlgate_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
