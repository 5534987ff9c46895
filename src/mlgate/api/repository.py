"""The V2 model repository extension: list the models a server can serve, load and unload them.

Source: KServe/Triton "Model Repository Extension" (``POST v2/repository/index``,
``POST v2/repository/models/{name}/load``, ``.../unload``). It works on both sources of models: the
repository folder and the database registry, through the same machinery as rollouts (a load is warmed
before it takes traffic, an unload drains the in-flight requests first). Load and unload act on this
server only.

Security as the registry API's (``mlgate.api.catalog``), never anonymous: load and unload need
the ``deploy`` right on the model and are audited (``model.load`` / ``model.unload``, right after the change
takes effect: it is not a catalog change, so there is no transaction to share); the index needs a signed-in
caller and lists only the models the caller may deploy or predict with; a version that failed to load
shows its load error (``reason``) to callers that may deploy the model, and only that it failed to others.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response

from mlgate.api.catalog import DEPLOY, SIGNED_IN, By, control_plane, readable
from mlgate.auth.caller import Action
from mlgate.catalog.control import ControlPlane
from mlgate.protocols.body import json_response
from mlgate.protocols.errors import ERROR_RESPONSES
from mlgate.protocols.security import may_use

__all__ = ["router"]

router = APIRouter(prefix="/v2/repository", tags=["V2 Open Inference Protocol"], responses=ERROR_RESPONSES)
Control = Annotated[ControlPlane, Depends(control_plane)]


@router.post("/index", summary="Every model of the repository and the registry you may use, with its state",
             dependencies=[SIGNED_IN])
async def index(request: Request, control: Control, ready: Annotated[bool, Body(embed=True)] = False) -> Response:
    """Every model of the repository folder and the catalog the caller may use, with its state (V2 repository
    extension); with ``ready``, only the ready ones.
    """
    entries = await control.index()
    names = {str(e["name"]) for e in entries}
    visible = {name: await readable(request, name) for name in names}
    deployable = {name: await may_use(request, name, Action.DEPLOY) for name in names if visible[name]}
    entries = [e for e in entries if visible[str(e["name"])] and (not ready or e["state"] == "READY")]
    for entry in entries:
        if entry["state"] == "FAILED" and not deployable[str(entry["name"])]:
            entry["reason"] = "failed to load; the server log says why"
    return json_response(entries)


@router.post("/models/{model_name}/load", summary="Load a model (all the versions its route needs)",
             dependencies=[DEPLOY])
async def load(control: Control, caller: By, model_name: str) -> Response:
    """Load a model on this server (the versions its route needs, warmed); 404 for an unknown model."""
    await control.load(model_name, by=caller)
    return json_response({})


@router.post("/models/{model_name}/unload", summary="Unload a model (after its requests in flight finish)",
             dependencies=[DEPLOY])
async def unload(control: Control, caller: By, model_name: str) -> Response:
    """Unload a model on this server once its requests in flight finish."""
    await control.unload(model_name, by=caller)
    return json_response({})
