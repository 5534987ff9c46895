"""KServe V2 Open Inference Protocol, REST: health, server and model metadata, readiness, inference.

Source: KServe "Open Inference Protocol (V2)", HTTP/REST section. A not-ready server or model answers its
readiness route with 400 (the spec asks for a 4xx) and a body saying why. Inference also speaks the binary
tensor data extension (``Inference-Header-Content-Length``; see ``mlgate.codecs.binary``).

A model that is not ready says why (``reason``: the load error) to callers with the ``deploy`` right on it,
in its readiness answer and in the 503 of its metadata; other callers learn only that it is not ready.

Health is open to every caller; server metadata needs a caller (``require_caller``); model routes need the
``predict`` right on the model (``require``), and inference is charged its rows against the caller's limits.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from mlgate.auth.caller import Action
from mlgate.codecs import v2 as codec
from mlgate.inference.dataplane import DataPlane
from mlgate.protocols.body import (
    binary_response,
    dataplane,
    json_response,
    read_json,
    read_v2_body,
    request_timeout_ms,
)
from mlgate.protocols.errors import ERROR_RESPONSES
from mlgate.protocols.headers import cacheable
from mlgate.protocols.jobs import accept_job, prefers_async
from mlgate.protocols.routes import InferenceRoute, OpenAPIOperation, serving
from mlgate.protocols.security import admit, charge, may_use, require, require_caller, rows_of
from mlgate.protocols.state import server_state
from mlgate.types import (
    InferenceRequest,
    InferenceResponse,
    LiveResponse,
    ModelMetadata,
    ModelReadyResponse,
    ReadyResponse,
    ServerMetadata,
)

__all__ = ["ROUTES", "infer", "router"]

TAG = "V2 Open Inference Protocol"
router = APIRouter(prefix="/v2", tags=[TAG], responses=ERROR_RESPONSES)
Plane = Annotated[DataPlane, Depends(dataplane)]
PREDICT = [require(Action.PREDICT)]


@router.get("/health/live", response_model=LiveResponse, summary="Server liveness")
async def live(plane: Plane) -> Response:
    """V2 server liveness."""
    return json_response({"live": plane.live()})


@router.get("/health/ready", response_model=ReadyResponse,
            summary="Server readiness (400 while loading, 503 while stopping)")
async def ready(plane: Plane) -> Response:
    """V2 server readiness: 200 when ready; 400 (a 4xx, as the spec asks) while loading; 503 while stopping."""
    is_ready = plane.ready()
    # 400 while loading (the spec asks for a 4xx); 503 once the server is stopping, so that load balancers
    # and probes see an unavailable server, not a bad request.
    status = 200 if is_ready else 503 if plane.draining else 400
    return json_response({"ready": is_ready}, status)


@router.get("", response_model=ServerMetadata, summary="Server metadata", dependencies=[require_caller()])
async def server_metadata(plane: Plane) -> Response:
    """V2 server metadata (any caller that may use a model)."""
    return json_response(plane.server_metadata().model_dump())


@router.get("/models/{model_name}", response_model=ModelMetadata, summary="Model metadata",
            dependencies=PREDICT)
@router.get("/models/{model_name}/versions/{model_version}", response_model=ModelMetadata,
            summary="Model version metadata", dependencies=PREDICT)
async def model_metadata(request: Request, plane: Plane, model_name: str,
                         model_version: str | None = None) -> Response:
    """V2 model metadata (the ``predict`` right on the model); why it is not ready for its deployers."""
    explain = await may_use(request, model_name, Action.DEPLOY)
    return json_response(plane.model_metadata(model_name, model_version, explain=explain).model_dump())


@router.get("/models/{model_name}/ready", response_model=ModelReadyResponse,
            summary="Model readiness (400 when not ready)", dependencies=PREDICT)
@router.get("/models/{model_name}/versions/{model_version}/ready", response_model=ModelReadyResponse,
            summary="Model version readiness (400 when not ready)", dependencies=PREDICT)
async def model_ready(request: Request, plane: Plane, model_name: str, model_version: str | None = None) -> Response:
    """V2 model readiness: 200 when READY, 400 otherwise; why not, for the model's deployers."""
    handle = plane.model_status(model_name, model_version)
    body: dict[str, object] = {"name": handle.name, "version": handle.version, "ready": handle.ready}
    if not handle.ready and await may_use(request, model_name, Action.DEPLOY):
        body["reason"] = handle.reason or handle.state.value.lower()
    return json_response(body, 200 if handle.ready else 400)


async def infer(request: Request) -> Response:
    """V2 inference: admit the caller on the model (``predict``), decode the tensors (JSON or the binary
    extension), charge their rows, run the model, encode the outputs it asked for."""
    name, version = request.path_params["model_name"], request.path_params.get("model_version")
    await admit(request, Action.PREDICT, name, version)
    plane = server_state(request).dataplane
    if prefers_async(request):  # Prefer: respond-async -> 202 and a job (mlgate.protocols.jobs)
        return await accept_job(request, "v2", name, version, await read_json(request, plane),
                                timeout_ms=request_timeout_ms(request))
    async with serving(request, plane, name, version) as call:
        handle = call.handle
        timeout_ms = request_timeout_ms(request)
        parsed, binary_section = await read_v2_body(request, plane)
        body = codec.parse_request(parsed)
        inputs = codec.decode_inputs(body, handle.inputs, binary_section)
        await charge(request, rows_of(inputs))
        outputs = await call.infer(inputs, body.parameters, timeout_ms=timeout_ms, cache=cacheable(request))
    content, chunks = codec.encode_response(
        model_name=handle.name, model_version=handle.version, request=body, outputs=outputs,
        specs=handle.outputs, labels=handle.labels)
    return binary_response(content, chunks) if chunks else json_response(content)


_NAME = ("model_name", "The model (or alias).")
_VERSION = ("model_version", "The model version.")
ROUTES = [
    InferenceRoute("/v2/models/{model_name}/infer", infer, OpenAPIOperation(
        "/v2/models/{model_name}/infer", "Inference", TAG, InferenceRequest, InferenceResponse, (_NAME,))),
    InferenceRoute("/v2/models/{model_name}/versions/{model_version}/infer", infer, OpenAPIOperation(
        "/v2/models/{model_name}/versions/{model_version}/infer", "Inference on a model version", TAG,
        InferenceRequest, InferenceResponse, (_NAME, _VERSION))),
]
"""The V2 inference routes (``InferenceRoute``: served by the edge's fast path and by the router alike)."""
