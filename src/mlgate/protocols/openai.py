"""OpenAI-compatible REST: ``POST /v1/embeddings``, for clients built on the official ``openai`` SDK.

The route parses the body (``mlgate.codecs.openai``), runs the texts through the data plane
(``mlgate.inference.embeddings``: dynamic batching and workers apply) and answers in OpenAI's shape. Errors keep
mlgate's one JSON error body, so the SDK raises its status error (``openai.BadRequestError`` for 400, ...)
with ``response.json()`` saying what is wrong.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.routing import Route

from mlgate.auth.caller import Action
from mlgate.codecs.openai import encode_embeddings, parse_embedding_request
from mlgate.inference.dataplane import DataPlane
from mlgate.inference.embeddings import embed
from mlgate.protocols.body import dataplane, json_response, read_json, request_timeout_ms
from mlgate.protocols.caller import Caller, current_caller, routing_key
from mlgate.protocols.errors import ERROR_RESPONSES
from mlgate.protocols.security import admit_caller, authorize, charge, require_caller
from mlgate.types import EmbeddingRequest, EmbeddingResponse

__all__ = ["OPENAPI_MODELS", "ROUTES", "router"]

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], responses=ERROR_RESPONSES)
Plane = Annotated[DataPlane, Depends(dataplane)]

_EMBEDDINGS_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EmbeddingRequest"}}},
    }
}


@router.post("/embeddings", response_model=EmbeddingResponse, openapi_extra=_EMBEDDINGS_BODY,
             summary="Create embeddings (OpenAI-compatible)", dependencies=[require_caller(count=False)])
async def embeddings(request: Request, plane: Plane, caller: Caller) -> Response:
    """Embed ``input`` (a string or a list of strings) with the embedding model ``model``.

    400 for token arrays, a ``dimensions`` other than the model's width, or a model that is not an
    embedding model; 404 for an unknown model. The answering version is in ``X-Model-Version``.
    Needs the ``predict`` right on ``model``; the cost is the tokens read (each text at least one, charged
    before the model runs, the rest after), on the same counters as V2 and V1 requests to that model.
    """
    return await _embeddings(request, plane, caller)


async def _embeddings(request: Request, plane: DataPlane, caller: str | None) -> Response:
    timeout_ms = request_timeout_ms(request)
    body, texts = parse_embedding_request(await read_json(request, plane))
    await authorize(request, Action.PREDICT, body.model)
    await charge(request, len(texts))
    async with plane.serving(body.model, caller=caller, key=routing_key(request, caller)) as call:
        handle = call.handle
        result = await embed(plane, handle, texts, body.dimensions, timeout_ms=timeout_ms)
    if result.token_counts is not None:
        await charge(request, int(result.token_counts.sum()) - len(texts))
    return json_response(encode_embeddings(model=handle.name, vectors=result.vectors,
                                           token_counts=result.token_counts, encoding_format=body.encoding_format),
                         headers={"X-Model-Version": handle.version})


async def _serve_embeddings(request: Request) -> Response:
    """``embeddings`` without FastAPI's dependency resolution: the same security, then the same body."""
    await admit_caller(request, count=False)
    plane: DataPlane = request.app.state.dataplane
    return await _embeddings(request, plane, await current_caller(request))


ROUTES = [Route("/v1/embeddings", _serve_embeddings, methods=["POST"], include_in_schema=False)]
"""The route as a plain Starlette route, served by the edge's fast path (and ahead of ``router``, whose route
stays for the OpenAPI document)."""


OPENAPI_MODELS = (EmbeddingRequest,)
"""Models referenced by hand in ``openapi_extra``; the app adds their schemas to the document."""
