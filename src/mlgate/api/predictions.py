"""The prediction log over REST (under ``/api/<version>``): a filtered, cursor-paginated query, and an
export as JSON lines (``application/x-ndjson``, one record per line, oldest first, streamed).

Every filter is a query parameter; one the route does not know is a 400 naming it (a misspelt filter would
otherwise answer the whole log). ``caller=anonymous`` selects callers without credentials.

Security: the log holds callers' inputs and outputs, so it is for admins: the ``admin`` right on every model
(server-wide), or the ``deploy`` right on the model the query filters on (``?model=churn``: a model's
deployer may read that model's log, which its own code could record anyway). Never anonymous; 401 without
credentials, 403 otherwise.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from mlgate.auth.caller import Action
from mlgate.auth.caller import Caller as AuthCaller
from mlgate.codecs.json import dumps
from mlgate.db.engine import Database
from mlgate.db.queries.predlog import PredictionFilter, export_predictions, query_predictions
from mlgate.errors import InvalidInput
from mlgate.protocols.body import json_response, query_time
from mlgate.protocols.errors import ERROR_RESPONSES
from mlgate.protocols.security import Bearer, admit, authenticate, security
from mlgate.protocols.state import server_state

__all__ = ["router"]



async def log_reader(request: Request, _: Bearer) -> AuthCaller:
    """Authorize a read of the log: ``deploy`` on the ``model`` filter, else ``admin`` server-wide."""
    model = request.query_params.get("model")
    caller = await authenticate(request)
    if model and security(request).policy.allows(caller, Action.DEPLOY, model):
        return await admit(request, Action.DEPLOY, model)
    return await admit(request, Action.ADMIN, None)


router = APIRouter(tags=["Prediction log"], responses=ERROR_RESPONSES, dependencies=[Depends(log_reader)])
_STATUS = re.compile(r"^([1-5])(?:\d\d|xx)$")


def _database(request: Request) -> Database:
    return server_state(request).database


def filters(
    request: Request,
    model: Annotated[str | None, Query(max_length=128)] = None,
    version: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[str | None, Query(description="An HTTP status (200) or a class (4xx).")] = None,
    since: Annotated[str | None, Query(description="ISO 8601 time, inclusive.")] = None,
    until: Annotated[str | None, Query(description="ISO 8601 time, exclusive.")] = None,
    shadow: bool | None = None,
    caller: Annotated[str | None, Query(max_length=256, description="key:<prefix> (user:<name>), user:<name> "
                                        "or anonymous.")] = None,
    request_id: Annotated[str | None, Query(max_length=128, description="The X-Request-ID of one request.")] = None,
    error_code: Annotated[str | None, Query(max_length=64, description="The error's code, e.g. rate_limited.")] = None,
) -> PredictionFilter:
    """The query's filters from its parameters; 400 for a bad value or an unknown parameter."""
    _known_parameters(request)
    code = klass = None
    if status is not None:
        match = _STATUS.match(status)
        if match is None:
            raise InvalidInput(f"status {status!r}: expected an HTTP status like 200 or a class like 5xx",
                               field="status")
        if status.endswith("xx"):
            klass = int(match.group(1))
        else:
            code = int(status)
    return PredictionFilter(model, version, code, klass, query_time(since, "since"), query_time(until, "until"),
                            shadow, caller, request_id, error_code)


FILTERS = ("model", "version", "status", "since", "until", "shadow", "caller", "request_id", "error_code")
_PAGING = ("limit", "cursor")


def _known_parameters(request: Request) -> None:
    """400 for a query parameter the route does not take (the filters, and ``limit``/``cursor`` on the list)."""
    known = FILTERS + (_PAGING if not request.url.path.endswith("/export") else ())
    for name in request.query_params:
        if name not in known:
            raise InvalidInput(f"unknown query parameter {name!r}; this route takes {', '.join(known)}",
                               field=name)


Filters = Annotated[PredictionFilter, Depends(filters)]


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        value = int(base64.urlsafe_b64decode(cursor.encode() + b"==").decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this API returned", field="cursor") from None
    return value


def _encode(value: int | None) -> str | None:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=") if value is not None else None


@router.get("/predictions", summary="Query the prediction log (newest first, cursor pagination)")
async def list_predictions(
    request: Request, where: Filters,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")] = None,
) -> Response:
    """Prediction-log records, newest first, ``limit`` a page, ``cursor`` from the previous page."""
    items, after = await query_predictions(_database(request), where, limit=limit, before_id=_cursor(cursor))
    return json_response({"items": items, "next_cursor": _encode(after)})


@router.get("/predictions/export", summary="Export the prediction log as JSON lines (oldest first)",
            response_class=StreamingResponse)
async def export(request: Request, where: Filters) -> StreamingResponse:
    """Every matching record as JSON lines (``application/x-ndjson``), oldest first, streamed."""
    database = _database(request)

    async def lines() -> AsyncIterator[bytes]:
        async for page in export_predictions(database, where):
            yield b"".join(dumps(record) + b"\n" for record in page)

    return StreamingResponse(lines(), media_type="application/x-ndjson",
                             headers={"Content-Disposition": 'attachment; filename="predictions.jsonl"'})
