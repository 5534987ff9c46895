"""The one place where errors become gRPC statuses (the gRPC twin of ``mlgate.protocols.errors``).

Each ``MlgateError`` maps by its HTTP status (``mlgate.errors``), with the code it carries::

    400 BadRequest and subclasses      INVALID_ARGUMENT   (the message starts with the field)
    401 Unauthenticated                UNAUTHENTICATED
    403 Forbidden                      PERMISSION_DENIED
    404 NotFound and subclasses        NOT_FOUND
    409 Conflict / VersionExists       FAILED_PRECONDITION / ALREADY_EXISTS
    413 PayloadTooLarge, 429 RateLimited  RESOURCE_EXHAUSTED
    503 ModelNotReady, QueueFull, ...  UNAVAILABLE
    504 DeadlineExceeded               DEADLINE_EXCEEDED
    500 and anything else              INTERNAL           (generic message; the details go to the log)

Trailing metadata carries ``mlgate-error-code`` (the error's stable code), ``mlgate-error-field`` (the field
at fault, when known) and, on RESOURCE_EXHAUSTED and UNAVAILABLE with a delay, ``retry-after`` (whole
seconds, as the HTTP header). A message over ``grpc_max_message_bytes`` is refused by grpc itself, before it
is decoded, with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import math
from http import HTTPStatus

import grpc
import structlog

from mlgate.errors import MlgateError, VersionExists

__all__ = ["INTERNAL_MESSAGE", "Status", "status_of", "unexpected_status"]

log = structlog.get_logger("mlgate.protocols.grpc")

INTERNAL_MESSAGE = "internal server error; the server log has the details under this call's x-request-id"

_CODES: dict[int, grpc.StatusCode] = {
    HTTPStatus.BAD_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    HTTPStatus.UNAUTHORIZED: grpc.StatusCode.UNAUTHENTICATED,
    HTTPStatus.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
    HTTPStatus.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    HTTPStatus.CONFLICT: grpc.StatusCode.FAILED_PRECONDITION,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    HTTPStatus.TOO_MANY_REQUESTS: grpc.StatusCode.RESOURCE_EXHAUSTED,
    HTTPStatus.SERVICE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    HTTPStatus.GATEWAY_TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
}

Metadata = tuple[tuple[str, str], ...]


class Status:
    """A gRPC status to end a call with: code, message and trailing metadata."""

    __slots__ = ("code", "message", "trailers")

    def __init__(self, code: grpc.StatusCode, message: str, trailers: Metadata = ()) -> None:
        self.code, self.message, self.trailers = code, message, trailers


def status_of(exc: MlgateError, request_id: str = "") -> Status:
    """The gRPC status of ``exc`` (see the module docstring); a 5xx is logged with the request id."""
    code = grpc.StatusCode.ALREADY_EXISTS if isinstance(exc, VersionExists) else _CODES.get(
        int(exc.status), grpc.StatusCode.INTERNAL)
    trailers: list[tuple[str, str]] = [("mlgate-error-code", exc.code)]
    if exc.field:
        trailers.append(("mlgate-error-field", exc.field))
    if exc.retry_after_s:
        trailers.append(("retry-after", str(math.ceil(exc.retry_after_s))))
    if exc.status >= 500:
        log.warning("grpc call failed", code=exc.code, status=int(exc.status), request_id=request_id)
    # mlgate's own 5xx messages are generic already (mlgate.errors); 4xx messages are written for the caller.
    # gRPC has no error body: the message names the field itself (REST's body has it apart).
    message = exc.message
    if exc.field and not message.startswith(exc.field):
        message = f"{exc.field}: {message}"
    return Status(code, message, tuple(trailers))


def unexpected_status(exc: BaseException, request_id: str = "") -> Status:
    """The generic INTERNAL status of an error that is a bug; the traceback goes to the log."""
    log.error("unhandled error in a grpc call", request_id=request_id, exc_info=exc)
    return Status(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE, (("mlgate-error-code", "internal_error"),))
