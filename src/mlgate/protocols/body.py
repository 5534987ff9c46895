"""Shared helpers of the protocol routes: the data plane of the app, and reading a JSON body."""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from mlgate.codecs.json import dumps, loads
from mlgate.dataplane import DataPlane
from mlgate.errors import BadRequest, MalformedJSON, UnsupportedFeature

__all__ = ["TIMEOUT_HEADER", "dataplane", "json_response", "read_json", "request_timeout_ms"]

TIMEOUT_HEADER = "X-Request-Timeout-Ms"
"""Request header: the caller's timeout in milliseconds; it can lower the model's timeout, never raise it."""


async def dataplane(request: Request) -> DataPlane:
    """The DataPlane built by the app's lifespan (FastAPI dependency; async, so FastAPI does not run it on
    its thread pool for every request)."""
    plane: DataPlane = request.app.state.dataplane
    return plane


async def read_json(request: Request, plane: DataPlane) -> Any:
    """The parsed JSON body. Raises MalformedJSON, JSONTooDeep, PayloadTooLarge, UnsupportedFeature."""
    if "inference-header-content-length" in request.headers:
        raise UnsupportedFeature(
            "the V2 binary tensor data extension is not supported by this server yet; send JSON "
            "(tritonclient: binary_data=False)", field="headers.inference-header-content-length")
    body = await request.body()
    if not body.strip():
        raise MalformedJSON("request body is empty; expected a JSON object", field="body")
    return loads(body, max_depth=plane.settings.max_json_depth)


def json_response(content: Any, status_code: int = 200) -> Response:
    """A JSON response serialised by orjson (numpy arrays included)."""
    return Response(dumps(content), status_code=status_code, media_type="application/json")


def request_timeout_ms(request: Request) -> float | None:
    """The ``X-Request-Timeout-Ms`` header as a number of ms, or None. BadRequest unless a number > 0."""
    raw = request.headers.get(TIMEOUT_HEADER)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise BadRequest(f"header {TIMEOUT_HEADER} must be a number of milliseconds > 0, got {raw[:40]!r}",
                         field=f"headers.{TIMEOUT_HEADER.lower()}")
    return value
