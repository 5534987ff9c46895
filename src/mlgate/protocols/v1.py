"""KServe V1 / TF-Serving REST: model status and ``:predict``.

``POST /v1/models/{name}:predict`` and ``/v1/models/{name}/versions/{version}:predict``. The answer names the
version that answered in the ``X-Model-Version`` header. Every route needs the ``predict`` right on the model;
``:predict`` is charged its rows (instances) against the caller's limits, on the same counters as V2.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from mlgate.auth.caller import Action
from mlgate.codecs import v1 as codec
from mlgate.errors import NotFound
from mlgate.inference.dataplane import DataPlane
from mlgate.protocols.body import dataplane, json_response, read_json, request_timeout_ms
from mlgate.protocols.errors import ERROR_RESPONSES
from mlgate.protocols.headers import cacheable
from mlgate.protocols.jobs import accept_job, prefers_async
from mlgate.protocols.routes import InferenceRoute, OpenAPIOperation, serving
from mlgate.protocols.security import admit, charge, may_use, require, rows_of
from mlgate.protocols.state import server_state
from mlgate.types import V1ModelStatus, V1PredictRequest, V1PredictResponse

__all__ = ["ROUTES", "predict", "predict_version", "router"]

TAG = "V1 / TF-Serving REST"
router = APIRouter(prefix="/v1", tags=[TAG], responses=ERROR_RESPONSES)
Plane = Annotated[DataPlane, Depends(dataplane)]


def _strip_verb(spec: str) -> str:
    return spec.rpartition(":")[0] if ":" in spec else spec


_STATES = {"READY": "AVAILABLE", "LOADING": "LOADING", "FAILED": "UNAVAILABLE", "UNLOADED": "END"}


@router.get("/models/{model_name}", response_model=V1ModelStatus, summary="Model status",
            dependencies=[require(Action.PREDICT)])
async def model_status(request: Request, plane: Plane, model_name: str) -> Response:
    """The model's versions and their states; ``reason`` (why the latest is not ready) for its deployers."""
    versions = plane.registry.versions(model_name)
    latest = plane.model_status(model_name)
    status = [{"version": v, "state": _STATES[plane.model_status(model_name, v).state.value]} for v in versions]
    body: dict[str, object] = {"name": latest.name, "ready": latest.ready, "model_version_status": status}
    if not latest.ready and await may_use(request, model_name, Action.DEPLOY):
        body["reason"] = latest.reason or latest.state.value.lower()
    return json_response(body)


async def _predict(request: Request, name: str, version: str | None) -> Response:
    """Admit the caller on the model (``predict``), decode ``instances``/``inputs``, charge their rows, run
    the model. ``name`` or ``version`` (the last path segment) still ends in ``:predict``."""
    if version is None:
        await admit(request, Action.PREDICT, _strip_verb(name))
    else:
        await admit(request, Action.PREDICT, name, _strip_verb(version))
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
    plane = server_state(request).dataplane
    if prefers_async(request):  # Prefer: respond-async -> 202 and a job (mlgate.protocols.jobs)
        return await accept_job(request, "v1", name, version, await read_json(request, plane),
                                timeout_ms=request_timeout_ms(request))
    async with serving(request, plane, name, version) as call:
        handle = call.handle
        timeout_ms = request_timeout_ms(request)
        inputs = codec.decode_predict(await read_json(request, plane), handle.inputs)
        await charge(request, rows_of(inputs))
        outputs = await call.infer(inputs, timeout_ms=timeout_ms, cache=cacheable(request))
    return json_response(codec.encode_predictions(outputs, handle.outputs), headers={"X-Model-Version": handle.version})


async def predict(request: Request) -> Response:
    """``POST /v1/models/{name}:predict``."""
    return await _predict(request, request.path_params["model_spec"], None)


async def predict_version(request: Request) -> Response:
    """``POST /v1/models/{name}/versions/{version}:predict``."""
    return await _predict(request, request.path_params["model_name"], request.path_params["version_spec"])


_NAME = ("model_name", "The model (or alias).")
ROUTES = [
    InferenceRoute("/v1/models/{model_spec}", predict, OpenAPIOperation(
        "/v1/models/{model_name}:predict", "Predict", TAG, V1PredictRequest, V1PredictResponse, (_NAME,))),
    InferenceRoute("/v1/models/{model_name}/versions/{version_spec}", predict_version, OpenAPIOperation(
        "/v1/models/{model_name}/versions/{model_version}:predict", "Predict on a model version", TAG,
        V1PredictRequest, V1PredictResponse, (_NAME, ("model_version", "The model version.")))),
]
"""The V1 predict routes (``InferenceRoute``), documented as ``.../{model_name}:predict``: the route matches
the whole last segment, and ``_predict`` splits off the verb."""
