"""KServe V2 Open Inference Protocol, REST: health, server and model metadata, readiness, inference.

Source: KServe "Open Inference Protocol (V2)", HTTP/REST section. A not-ready server or model answers its
readiness route with 400 (the spec asks for a 4xx) and a body saying why. Inference also speaks the binary
tensor data extension (``Inference-Header-Content-Length``; see ``mlgate.codecs.binary``).

Health is open to every caller; server metadata needs a caller (``require_caller``); model routes need the
``predict`` right on the model (``require``), and inference is charged its rows against the caller's limits.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.routing import Route

from mlgate.auth.caller import Action
from mlgate.codecs import v2 as codec
from mlgate.inference.dataplane import DataPlane
from mlgate.protocols.body import binary_response, dataplane, json_response, read_v2_body, request_timeout_ms
from mlgate.protocols.caller import Caller, current_caller, routing_key
from mlgate.protocols.errors import ERROR_RESPONSES
from mlgate.protocols.security import authorize_version, charge, require, require_caller, rows_of
from mlgate.types import (
    InferenceRequest,
    InferenceResponse,
    LiveResponse,
    ModelMetadata,
    ModelReadyResponse,
    ReadyResponse,
    ServerMetadata,
)

__all__ = ["ROUTES", "router"]

router = APIRouter(prefix="/v2", tags=["V2 Open Inference Protocol"], responses=ERROR_RESPONSES)
Plane = Annotated[DataPlane, Depends(dataplane)]
PREDICT = [require(Action.PREDICT)]


@router.get("/health/live", response_model=LiveResponse, summary="Server liveness")
async def live(plane: Plane) -> Response:
    return json_response({"live": plane.live()})


@router.get("/health/ready", response_model=ReadyResponse, summary="Server readiness (400 when not ready)")
async def ready(plane: Plane) -> Response:
    is_ready = plane.ready()
    return json_response({"ready": is_ready}, 200 if is_ready else 400)


@router.get("", response_model=ServerMetadata, summary="Server metadata", dependencies=[require_caller()])
async def server_metadata(plane: Plane) -> Response:
    return json_response(plane.server_metadata().model_dump())


@router.get("/models/{model_name}", response_model=ModelMetadata, summary="Model metadata",
            dependencies=PREDICT)
@router.get("/models/{model_name}/versions/{model_version}", response_model=ModelMetadata,
            summary="Model version metadata", dependencies=PREDICT)
async def model_metadata(plane: Plane, model_name: str, model_version: str | None = None) -> Response:
    return json_response(plane.model_metadata(model_name, model_version).model_dump())


@router.get("/models/{model_name}/ready", response_model=ModelReadyResponse,
            summary="Model readiness (400 when not ready)", dependencies=PREDICT)
@router.get("/models/{model_name}/versions/{model_version}/ready", response_model=ModelReadyResponse,
            summary="Model version readiness (400 when not ready)", dependencies=PREDICT)
async def model_ready(plane: Plane, model_name: str, model_version: str | None = None) -> Response:
    handle = plane.model_status(model_name, model_version)
    body = {"name": handle.name, "version": handle.version, "ready": handle.ready}
    return json_response(body, 200 if handle.ready else 400)


_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}},
    }
}


@router.post("/models/{model_name}/infer", response_model=InferenceResponse, openapi_extra=_INFER_BODY,
             summary="Inference", dependencies=PREDICT)
@router.post("/models/{model_name}/versions/{model_version}/infer", response_model=InferenceResponse,
             openapi_extra=_INFER_BODY, summary="Inference on a model version", dependencies=PREDICT)
async def infer(request: Request, plane: Plane, caller: Caller, model_name: str,
                model_version: str | None = None) -> Response:
    return await _infer(request, plane, caller, model_name, model_version)


async def _serve_infer(request: Request) -> Response:
    """``infer`` without FastAPI's dependency resolution: the same security, then the same body."""
    name, version = request.path_params["model_name"], request.path_params.get("model_version")
    await authorize_version(request, Action.PREDICT, name, version)
    plane: DataPlane = request.app.state.dataplane
    return await _infer(request, plane, await current_caller(request), name, version)


async def _infer(request: Request, plane: DataPlane, caller: str | None, model_name: str,
                 model_version: str | None) -> Response:
    async with plane.serving(model_name, model_version, caller=caller, key=routing_key(request, caller)) as call:
        handle = call.handle
        timeout_ms = request_timeout_ms(request)
        parsed, binary_section = await read_v2_body(request, plane)
        body = codec.parse_request(parsed)
        inputs = codec.decode_inputs(body, handle.inputs, binary_section)
        await charge(request, rows_of(inputs))
        outputs = await call.infer(inputs, body.parameters, timeout_ms=timeout_ms)
    content, chunks = codec.encode_response(
        model_name=handle.name, model_version=handle.version, request=body, outputs=outputs,
        specs=handle.outputs, labels=handle.labels)
    return binary_response(content, chunks) if chunks else json_response(content)


ROUTES = [
    Route("/v2/models/{model_name}/infer", _serve_infer, methods=["POST"], include_in_schema=False),
    Route("/v2/models/{model_name}/versions/{model_version}/infer", _serve_infer, methods=["POST"],
          include_in_schema=False),
]
"""The two inference routes as plain Starlette routes, which the app serves ahead of ``router`` (whose routes stay
for the OpenAPI document): no per-request dependency resolution, the same security, body and error handlers."""

OPENAPI_MODELS = (InferenceRequest,)
"""Models referenced by hand in ``openapi_extra``; the app adds their schemas to the document."""
