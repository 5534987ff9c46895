"""Shared helpers of the protocol routes: the data plane of the app, reading bodies, writing responses."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from mlgate.codecs import binary
from mlgate.codecs.json import dumps, loads
from mlgate.errors import BadRequest, InvalidInput, MalformedJSON, UnsupportedFeature
from mlgate.inference.dataplane import DataPlane
from mlgate.protocols.headers import header
from mlgate.protocols.state import server_state

__all__ = ["TIMEOUT_HEADER", "binary_response", "dataplane", "json_response", "query_time", "read_body",
           "read_json", "read_v2_body", "request_timeout_ms"]

_OFFLOAD_BYTES = 256 * 1024
"""Bodies larger than this are parsed on a worker thread, so the event loop keeps serving."""

TIMEOUT_HEADER = "X-Request-Timeout-Ms"
"""Request header: the caller's timeout in milliseconds; it can lower the model's timeout, never raise it."""
_TIMEOUT_HEADER = TIMEOUT_HEADER.lower().encode()
_BINARY_HEADER = binary.HEADER.lower().encode()


async def dataplane(request: Request) -> DataPlane:
    """The DataPlane built by the app's lifespan (FastAPI dependency; async, so FastAPI does not run it on
    its thread pool for every request)."""
    return server_state(request).dataplane


async def read_json(request: Request, plane: DataPlane) -> Any:
    """The parsed JSON body. Raises MalformedJSON, JSONTooDeep, PayloadTooLarge, UnsupportedFeature."""
    if header(request, _BINARY_HEADER) is not None:
        raise UnsupportedFeature(
            f"the binary tensor data extension ({binary.HEADER}) is supported on V2 inference only; send JSON",
            field="headers.inference-header-content-length")
    return await _parse(await read_body(request), plane)


async def read_body(request: Request) -> bytes:
    """The whole request body, read with ``receive`` (``request.body()`` goes through an async generator,
    which costs ~4 % of a prediction's CPU for a body that arrives, as usual, in one message). Raises
    ClientDisconnect when the client goes away, and what the edge's body limit raises (413)."""
    message = await request.receive()
    chunks: list[bytes] = []
    while True:
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body = message.get("body", b"")
        if not message.get("more_body", False):
            if not chunks:
                return bytes(body)
            chunks.append(body)
            return b"".join(chunks)
        chunks.append(body)
        message = await request.receive()


async def read_v2_body(request: Request, plane: DataPlane) -> tuple[Any, memoryview | None]:
    """The JSON part of a V2 inference body, parsed, and its binary section (None without the header).

    The body is read into one mutable buffer that the binary section views, so tensors decoded from it
    are writable numpy arrays without a further copy. Raises what ``read_json`` raises, and InvalidInput
    for a bad ``Inference-Header-Content-Length``.
    """
    length = header(request, _BINARY_HEADER)
    if length is None:
        return await _parse(await read_body(request), plane), None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
    json_part, binary_part = binary.split_body(body, length)
    return await _parse(json_part, plane), binary_part


async def _parse(body: bytes, plane: DataPlane) -> Any:
    if not body.strip():
        raise MalformedJSON("request body is empty; expected a JSON object", field="body")
    depth = plane.settings.max_json_depth
    if len(body) > _OFFLOAD_BYTES:
        return await anyio.to_thread.run_sync(lambda: loads(body, max_depth=depth))
    return loads(body, max_depth=depth)


class _JSONBytes(Response):
    """A Starlette response of JSON bytes already rendered, its raw headers built directly: ``Response``'s
    generic header code (every name lowered and checked, the media type's charset) ran for every prediction."""

    media_type = "application/json"

    def __init__(self, body: bytes, status_code: int, headers: Mapping[str, str] | None) -> None:
        self.body = body
        self.status_code = status_code
        self.background = None
        raw = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
        if headers:
            raw.extend([(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()])
        self.raw_headers = raw


def json_response(content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response serialised by orjson (numpy arrays included); ``headers`` (names in any case, values
    latin-1) are added to its content-length and content-type."""
    return _JSONBytes(dumps(content), status_code, headers)


def binary_response(content: Any, chunks: list[bytes]) -> Response:
    """A binary tensor data extension response: the JSON of ``content``, then ``chunks``, with the header."""
    header = dumps(content)
    return Response(b"".join([header, *chunks]), media_type="application/octet-stream",
                    headers={binary.HEADER: str(len(header))})


def request_timeout_ms(request: Request) -> float | None:
    """The ``X-Request-Timeout-Ms`` header as a number of ms, or None. BadRequest unless a number > 0."""
    raw = header(request, _TIMEOUT_HEADER)
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


def query_time(value: str | None, field: str) -> datetime | None:
    """A query parameter's ISO 8601 time (``Z`` allowed; UTC when it names no zone), or None when absent.
    InvalidInput (400, naming ``field``) for anything else."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{field} {value!r} is not an ISO 8601 time, e.g. 2026-12-06T15:00:00Z",
                           field=field) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
