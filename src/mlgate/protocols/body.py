"""Shared helpers of the protocol routes: the data plane of the app, and reading a JSON body."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import Response

from mlgate.codecs.json import dumps, loads
from mlgate.dataplane import DataPlane
from mlgate.errors import MalformedJSON, UnsupportedFeature

__all__ = ["dataplane", "json_response", "read_json"]

_OFFLOAD_BYTES = 256 * 1024
"""Bodies larger than this are parsed on a worker thread, so the event loop keeps serving."""


def dataplane(request: Request) -> DataPlane:
    """The DataPlane built by the app's lifespan (FastAPI dependency)."""
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
    depth = plane.settings.max_json_depth
    if len(body) > _OFFLOAD_BYTES:
        return await anyio.to_thread.run_sync(lambda: loads(body, max_depth=depth))
    return loads(body, max_depth=depth)


def json_response(content: Any, status_code: int = 200) -> Response:
    """A JSON response serialised by orjson (numpy arrays included)."""
    return Response(dumps(content), status_code=status_code, media_type="application/json")
