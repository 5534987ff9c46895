"""KServe V1 / TF-Serving REST: model status and ``:predict``.

``POST /v1/models/{name}:predict`` and ``/v1/models/{name}/versions/{version}:predict``. The answer names the
version that answered in the ``X-Model-Version`` header. Every route needs the ``predict`` right on the model;
``:predict`` is charged its rows (instances) against the caller's limits, on the same counters as V2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.routing import Route

from mlgate.auth.caller import Action
from mlgate.codecs import v1 as codec
from mlgate.errors import NotFound
from mlgate.inference.dataplane import DataPlane
from mlgate.protocols.body import dataplane, json_response, read_json, request_timeout_ms
from mlgate.protocols.caller import Caller, current_caller, routing_key
from mlgate.protocols.errors import ERROR_RESPONSES
from mlgate.protocols.security import authorize_version, charge, require, rows_of
from mlgate.types import V1ModelStatus, V1PredictRequest, V1PredictResponse

__all__ = ["ROUTES", "router"]

router = APIRouter(prefix="/v1", tags=["V1 / TF-Serving REST"], responses=ERROR_RESPONSES)
Plane = Annotated[DataPlane, Depends(dataplane)]


def _without_verb(param: str) -> Callable[[Request], str | None]:
    """The model (or version) of a ``.../{name}:predict`` path: the segment without its ``:predict``."""

    def name(request: Request) -> str | None:
        return _strip_verb(str(request.path_params.get(param, "")))

    return name


def _strip_verb(spec: str) -> str:
    return spec.rpartition(":")[0] if ":" in spec else spec


_STATES = {"READY": "AVAILABLE", "LOADING": "LOADING", "FAILED": "UNAVAILABLE", "UNLOADED": "END"}


@router.get("/models/{model_name}", response_model=V1ModelStatus, summary="Model status",
            dependencies=[require(Action.PREDICT)])
async def model_status(plane: Plane, model_name: str) -> Response:
    versions = plane.registry.versions(model_name)
    latest = plane.model_status(model_name)
    status = [{"version": v, "state": _STATES[plane.model_status(model_name, v).state.value]} for v in versions]
    return json_response({"name": latest.name, "ready": latest.ready, "model_version_status": status})


_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/V1PredictRequest"}}},
    }
}


@router.post("/models/{model_spec}", response_model=V1PredictResponse, openapi_extra=_PREDICT_BODY,
             summary="Predict (path ends in :predict)",
             dependencies=[require(Action.PREDICT, _without_verb("model_spec"))])
async def predict(request: Request, plane: Plane, caller: Caller, model_spec: str) -> Response:
    return await _predict(request, plane, caller, model_spec, None)


@router.post("/models/{model_name}/versions/{version_spec}", response_model=V1PredictResponse,
             openapi_extra=_PREDICT_BODY, summary="Predict on a model version (path ends in :predict)",
             dependencies=[require(Action.PREDICT, version=_without_verb("version_spec"))])
async def predict_version(request: Request, plane: Plane, caller: Caller, model_name: str,
                          version_spec: str) -> Response:
    return await _predict(request, plane, caller, model_name, version_spec)


async def _predict(request: Request, plane: Plane, caller: str | None, name: str, version: str | None) -> Response:
    last = version if version is not None else name
    target, sep, verb = last.rpartition(":")
    if not sep:
        raise NotFound(f"no route for POST {request.url.path}; V1 inference is POST .../{last}:predict")
    if verb != "predict":
        raise NotFound(f"no route for POST {request.url.path}: the V1 verb ':{verb}' is not supported; "
                       f"use .../{target}:predict")
    if version is None:
        name = target
    else:
        version = target
    async with plane.serving(name, version, caller=caller, key=routing_key(request, caller)) as call:
        handle = call.handle
        timeout_ms = request_timeout_ms(request)
        inputs = codec.decode_predict(await read_json(request, plane), handle.inputs)
        await charge(request, rows_of(inputs))
        outputs = await call.infer(inputs, timeout_ms=timeout_ms)
    return json_response(codec.encode_predictions(outputs, handle.outputs), headers={"X-Model-Version": handle.version})


async def _serve_predict(request: Request) -> Response:
    """``predict`` without FastAPI's dependency resolution: the same security, then the same body."""
    spec = request.path_params["model_spec"]
    await authorize_version(request, Action.PREDICT, _strip_verb(spec), None)
    plane: DataPlane = request.app.state.dataplane
    return await _predict(request, plane, await current_caller(request), spec, None)


async def _serve_predict_version(request: Request) -> Response:
    """``predict_version`` without FastAPI's dependency resolution."""
    name, spec = request.path_params["model_name"], request.path_params["version_spec"]
    await authorize_version(request, Action.PREDICT, name, _strip_verb(spec))
    plane: DataPlane = request.app.state.dataplane
    return await _predict(request, plane, await current_caller(request), name, spec)


ROUTES = [
    Route("/v1/models/{model_spec}", _serve_predict, methods=["POST"], include_in_schema=False),
    Route("/v1/models/{model_name}/versions/{version_spec}", _serve_predict_version, methods=["POST"],
          include_in_schema=False),
]
"""The two predict routes as plain Starlette routes, which the app serves ahead of ``router`` (whose routes stay
for the OpenAPI document): no per-request dependency resolution, the same security, body and error handlers."""

OPENAPI_MODELS = (V1PredictRequest,)
