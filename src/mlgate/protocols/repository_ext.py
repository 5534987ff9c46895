"""The V2 model repository extension: list the models a server can serve, load and unload them.

Source: KServe/Triton "Model Repository Extension" (``POST v2/repository/index``,
``POST v2/repository/models/{name}/load``, ``.../unload``). It works on both sources of models: the
repository folder and the database registry, through the same machinery as rollouts (a load is warmed
before it takes traffic, an unload drains the in-flight requests first). Load and unload act on this
server only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends
from fastapi.responses import Response

from mlgate.control import ControlPlane
from mlgate.protocols.body import json_response
from mlgate.protocols.errors import ERROR_RESPONSES
from mlgate.protocols.registry_api import control_plane

__all__ = ["router"]

router = APIRouter(prefix="/v2/repository", tags=["V2 Open Inference Protocol"], responses=ERROR_RESPONSES)
Control = Annotated[ControlPlane, Depends(control_plane)]


@router.post("/index", summary="Every model of the repository and the registry, with its state")
async def index(control: Control, ready: Annotated[bool, Body(embed=True)] = False) -> Response:
    entries = await control.index()
    if ready:
        entries = [e for e in entries if e["state"] == "READY"]
    return json_response(entries)


@router.post("/models/{model_name}/load", summary="Load a model (all the versions its route needs)")
async def load(control: Control, model_name: str) -> Response:
    await control.load(model_name)
    return json_response({})


@router.post("/models/{model_name}/unload", summary="Unload a model (after its requests in flight finish)")
async def unload(control: Control, model_name: str) -> Response:
    await control.unload(model_name)
    return json_response({})
