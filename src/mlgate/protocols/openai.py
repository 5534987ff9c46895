"""OpenAI-compatible REST: ``POST /v1/embeddings``, for clients built on the official ``openai`` SDK.

The route parses the body (``mlgate.codecs.openai``), runs the texts through the data plane
(``mlgate.inference.embeddings``: dynamic batching and workers apply) and answers in OpenAI's shape. Errors keep
mlgate's one JSON error body, so the SDK raises its status error (``openai.BadRequestError`` for 400, ...)
with ``response.json()`` saying what is wrong.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mlgate.auth.caller import Action
from mlgate.codecs.openai import encode_embeddings, parse_embedding_request
from mlgate.inference.embeddings import embed
from mlgate.protocols.body import json_response, read_json, request_timeout_ms
from mlgate.protocols.jobs import accept_job, prefers_async
from mlgate.protocols.routes import InferenceRoute, OpenAPIOperation, serving
from mlgate.protocols.security import admit, charge
from mlgate.protocols.state import server_state
from mlgate.types import EmbeddingRequest, EmbeddingResponse

__all__ = ["ROUTES", "embeddings"]


async def embeddings(request: Request) -> Response:
    """Embed ``input`` (a string or a list of strings) with the embedding model ``model``.

    400 for token arrays, a ``dimensions`` other than the model's width, or a model that is not an
    embedding model; 404 for an unknown model. The answering version is in ``X-Model-Version``.
    Needs the ``predict`` right on ``model``; the cost is the tokens read (each text at least one, charged
    before the model runs, the rest after), on the same counters as V2 and V1 requests to that model.
    Bad credentials are a 401 before the body is read.
    """
    await admit(request, None, count=False)
    plane = server_state(request).dataplane
    timeout_ms = request_timeout_ms(request)
    raw = await read_json(request, plane)
    body, texts = parse_embedding_request(raw)
    await admit(request, Action.PREDICT, body.model)
    if prefers_async(request):  # Prefer: respond-async -> 202 and a job (mlgate.protocols.jobs)
        return await accept_job(request, "openai", body.model, None, raw, timeout_ms=timeout_ms)
    await charge(request, len(texts))
    async with serving(request, plane, body.model) as call:
        handle = call.handle
        result = await embed(plane, handle, texts, body.dimensions, timeout_ms=timeout_ms)
    if result.token_counts is not None:
        await charge(request, int(result.token_counts.sum()) - len(texts))
    return json_response(encode_embeddings(model=handle.name, vectors=result.vectors,
                                           token_counts=result.token_counts, encoding_format=body.encoding_format),
                         headers={"X-Model-Version": handle.version})


ROUTES = [InferenceRoute("/v1/embeddings", embeddings, OpenAPIOperation(
    "/v1/embeddings", "Create embeddings (OpenAI-compatible)", "OpenAI-compatible", EmbeddingRequest,
    EmbeddingResponse, ()))]
"""The embeddings route (``InferenceRoute``: served by the edge's fast path and by the router alike)."""
