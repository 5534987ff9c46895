"""The registry's REST API (under ``/api/<version>``): push, list, show and delete model versions; aliases,
promote and rollback; canary and shadow traffic; per-model settings.

Routes are thin: they parse, call ``ControlPlane``, and answer JSON. Changes answer once they are in
effect on this server (other replicas follow within the poll interval).

Security (``mlgate.protocols.security``; never anonymous, whatever ``anonymous_models`` says):

- Changes (push, delete a version, set/remove an alias, promote, rollback, traffic, model settings) need
  the ``deploy`` right on the model of the path: 401 without credentials, 403 without the right (the same
  for a model that does not exist). Each is audited (``mlgate.db.tables.audit``: actor, client address, request
  id) in the same transaction as the change itself (``mlgate.db.queries.catalog``). A push also passes every file
  of the archive to ``Policy.check_artifact`` before anything is stored or recorded.
- Reads (``GET /api/v1``, list, show a model or version, traffic) need a signed-in caller. Showing a model
  needs ``deploy`` or ``predict`` on it (403 otherwise); the list holds only such models.
"""

from __future__ import annotations

import tempfile
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile

from mlgate.api.versioning import ApiVersionDep
from mlgate.auth.caller import Action
from mlgate.auth.caller import Caller as AuthCaller
from mlgate.catalog.control import ControlPlane
from mlgate.db.queries.catalog import ModelInfo, VersionInfo
from mlgate.db.tables.audit import Actor
from mlgate.errors import InvalidInput, MlgateError, ModelVersionNotFound, Unauthenticated
from mlgate.inference.registry import ModelRegistry
from mlgate.model.manifest import NAME_PATTERN, is_valid_name
from mlgate.protocols.body import json_response
from mlgate.protocols.errors import ERROR_RESPONSES
from mlgate.protocols.security import (
    Bearer,
    admit,
    audit_actor,
    authenticate,
    may_use,
    require,
    require_caller,
    security,
)
from mlgate.protocols.state import server_state

__all__ = ["DEPLOY", "READ", "SIGNED_IN", "By", "readable", "router"]

RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    409: {"model": ERROR_RESPONSES[400]["model"], "description": "Conflict: version exists, or is in use."},
}
router = APIRouter(tags=["Registry"], responses=RESPONSES)


def control_plane(request: Request) -> ControlPlane:
    """The app's control plane (FastAPI dependency)."""
    return server_state(request).control


Control = Annotated[ControlPlane, Depends(control_plane)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


async def read_model(request: Request, _: Bearer) -> AuthCaller:
    """Authorize a read of the path's model: a signed-in caller with ``deploy`` or ``predict`` on it."""
    caller = await authenticate(request)
    if caller.anonymous:
        raise Unauthenticated()
    model = request.path_params.get("model_name")
    model = model if isinstance(model, str) else None
    deployer = model is not None and security(request).policy.allows(caller, Action.DEPLOY, model)
    return await admit(request, Action.DEPLOY if deployer else Action.PREDICT, model)


async def readable(request: Request, model: str) -> bool:
    """Whether the request's caller may see ``model`` in a registry list (deploy or predict on it)."""
    return await may_use(request, model, Action.DEPLOY) or await may_use(request, model, Action.PREDICT)


DEPLOY = require(Action.DEPLOY)
"""Route dependency of every registry change: the ``deploy`` right on the path's ``model_name``."""
READ = Depends(read_model)
"""Route dependency of reads of one model: signed in, with ``deploy`` or ``predict`` on it."""
SIGNED_IN = require_caller(signed_in=True)
"""Route dependency of lists: any signed-in caller (the list is filtered with ``readable``)."""
async def _actor(request: Request) -> Actor:
    return audit_actor(request)  # async: FastAPI would run a plain function in its thread pool


By = Annotated[Actor, Depends(_actor)]
"""Who makes a change, for the audit log (after ``DEPLOY`` authorized the request)."""


class AliasBody(BaseModel):
    """The body of ``PUT .../aliases/{alias}``: the version to point at."""
    model_config = ConfigDict(extra="forbid")
    version: Name


class PromoteBody(BaseModel):
    """The body of ``POST .../promote``: the version, and the alias to move (default ``production``)."""
    model_config = ConfigDict(extra="forbid")
    version: Name
    alias: Name = "production"


class RollbackBody(BaseModel):
    """The body of ``POST .../rollback``: the alias to move back (default ``production``)."""
    model_config = ConfigDict(extra="forbid")
    alias: Name = "production"


class Canary(BaseModel):
    """A canary: the version and the share of requests it gets (0-100 %)."""
    model_config = ConfigDict(extra="forbid")
    version: Name
    # strict: JSON true is not 1 %, nor "30" thirty.
    percent: float = Field(gt=0, le=100, strict=True, description="Share of requests without a version, 0-100.")


class TrafficBody(BaseModel):
    """The body of ``PUT .../traffic``: the canary (or null) and the shadow version (or null)."""
    model_config = ConfigDict(extra="forbid")
    canary: Canary | None = None
    shadow: Name | None = Field(default=None, description="Version receiving a copy of every request.")


class ModelPatch(BaseModel):
    """The body of ``PATCH /models/{name}``: per-model settings to change."""
    model_config = ConfigDict(extra="forbid")
    log_sample_rate: float | None = Field(default=None, ge=0, le=1, strict=True,
                                          description="Share of requests whose inputs and outputs are logged.")
    description: str | None = Field(default=None, max_length=10_000)


def version_json(info: VersionInfo, registry: ModelRegistry | None = None) -> dict[str, Any]:
    """A version as the API answers it, with its state on this server when ``registry`` is given."""
    state = None
    if registry is not None:
        try:
            handle = registry.get(info.name, info.version)
            state = handle.state.value if handle.version == info.version else None
        except MlgateError:
            state = None
    return {"name": info.name, "version": info.version, "runtime": info.runtime, "checksum": info.checksum,
            "checksum_algorithm": "sha256", "size_bytes": info.size_bytes, "artifact_uri": info.artifact_uri,
            "created_at": info.created_at.isoformat(), "created_by": info.created_by,
            "state": state or "UNLOADED", "manifest": info.manifest}


def model_json(info: ModelInfo, registry: ModelRegistry, *, full: bool = True) -> dict[str, Any]:
    """A model as the API answers it: versions (with ``full``), aliases, traffic and settings."""
    body: dict[str, Any] = {
        "name": info.name, "description": info.description, "aliases": info.aliases,
        "latest_version": next(reversed(info.versions), None),
        "canary": {"version": info.canary_version, "percent": info.canary_percent} if info.canary_version else None,
        "shadow": info.shadow_version, "log_sample_rate": info.log_sample_rate,
    }
    route = registry.route(info.name)
    body["serving"] = {"production": route.production, "aliases": dict(route.aliases), "canary": route.canary,
                       "canary_percent": route.canary_percent, "shadow": route.shadow} if route else None
    if full:
        body["versions"] = [version_json(v, registry) for v in info.versions.values()]
    else:
        body["versions"] = list(info.versions)
    return body


@router.get("", summary="This API version", dependencies=[SIGNED_IN])
async def index(version: ApiVersionDep) -> Response:
    """This API version and its links."""
    return json_response({"api_version": version.name, "deprecated": version.deprecated})


@router.get("/models", summary="List the registry models you may deploy or predict with",
            dependencies=[SIGNED_IN])
async def list_models(request: Request, control: Control) -> Response:
    """The catalog's models the caller may deploy or predict with."""
    snapshot = await control.catalog.snapshot()
    registry = control.plane.registry
    return json_response({"models": [model_json(m, registry, full=False) for m in snapshot.models.values()
                                     if await readable(request, m.name)]})


@router.get("/models/{model_name}", summary="Show a model: versions, aliases, traffic", dependencies=[READ])
async def show_model(control: Control, model_name: str) -> Response:
    """A model of the catalog: versions, aliases, traffic, settings; 404 when unknown."""
    return json_response(model_json(await control.model(model_name), control.plane.registry))


@router.patch("/models/{model_name}", summary="Change a model's settings (prediction log sample rate)",
              dependencies=[DEPLOY])
async def patch_model(control: Control, caller: By, model_name: str, body: ModelPatch) -> Response:
    """Change a model's settings; 400 for a bad value, 404 for an unknown model."""
    await control.update_model(model_name, log_sample_rate=body.log_sample_rate, description=body.description,
                               by=caller)
    return json_response(model_json(await control.model(model_name), control.plane.registry))


_PUSH_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary",
                         "description": "The model directory as a .tar.gz or .zip archive."},
                "version": {"type": "string", "description": "Version to record; default: the manifest's, "
                            "else one more than the highest numeric version."},
            },
        }}},
    }
}


@router.post("/models/{model_name}/versions", status_code=201, openapi_extra=_PUSH_BODY,
             summary="Push a version (multipart upload of a model directory archive)", dependencies=[DEPLOY])
async def push_version(request: Request, control: Control, caller: By, model_name: str) -> Response:
    """Push an archive (``.tar.gz`` or ``.zip`` of a model directory) as a new version; 400 for a bad
    archive or manifest, 409 for an existing version, 413 past ``registry_max_upload_bytes``.
    """
    who = await authenticate(request)
    policy = security(request).policy

    def check_file(path: str) -> None:
        policy.check_artifact(who, model_name, path)  # 403 for pickle & co. without deploy on the model

    # The form is parsed here rather than by FastAPI, so that a body over the upload limit stays a 413.
    form = await request.form(max_files=1, max_fields=4)
    try:
        upload, version = form.get("file"), form.get("version")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("the multipart form needs a 'file' part holding the archive", field="file")
        if version is not None and not isinstance(version, str):
            raise InvalidInput("'version' must be a text field", field="version")
        # Starlette spooled the upload to a temporary file; copy it to one we own for the checks.
        with tempfile.TemporaryFile() as fh:
            while chunk := await upload.read(1 << 20):
                fh.write(chunk)
            info = await control.push(model_name, fh, version=version or None, by=caller, check_file=check_file)
    finally:
        await form.close()
    return json_response(version_json(info, control.plane.registry), 201)


@router.get("/models/{model_name}/versions/{model_version}", summary="Show a version", dependencies=[READ])
async def show_version(control: Control, model_name: str, model_version: str) -> Response:
    """A version of a model; 404 when unknown."""
    info = await control.model(model_name)
    if model_version not in info.versions:
        raise ModelVersionNotFound(model_name, model_version, list(info.versions))
    return json_response(version_json(info.versions[model_version], control.plane.registry))


@router.delete("/models/{model_name}/versions/{model_version}", status_code=204,
               summary="Delete a version (409 while an alias, the canary or the shadow points at it)",
               dependencies=[DEPLOY])
async def delete_version(control: Control, caller: By, model_name: str, model_version: str) -> Response:
    """Delete a version no alias or traffic uses (409 otherwise) and its artifact."""
    await control.delete_version(model_name, model_version, by=caller)
    return Response(status_code=204)


@router.put("/models/{model_name}/aliases/{alias}", summary="Point an alias at a version", dependencies=[DEPLOY])
async def set_alias(control: Control, caller: By, model_name: str, alias: str, body: AliasBody) -> Response:
    """Point an alias at a version (loaded and warmed first); answers the version it left."""
    previous = await control.set_alias(model_name, _name(alias, "alias"), body.version, by=caller)
    return json_response({"model": model_name, "alias": alias, "version": body.version, "previous": previous})


@router.delete("/models/{model_name}/aliases/{alias}", status_code=204, summary="Remove an alias",
               dependencies=[DEPLOY])
async def delete_alias(control: Control, caller: By, model_name: str, alias: str) -> Response:
    """Remove an alias; 404 when the model has none of that name."""
    await control.delete_alias(model_name, alias, by=caller)
    return Response(status_code=204)


@router.post("/models/{model_name}/promote", summary="Move an alias (default production) to a version",
             dependencies=[DEPLOY])
async def promote(control: Control, caller: By, model_name: str, body: PromoteBody) -> Response:
    """Move an alias (default ``production``) to a version, loaded and warmed before it gets traffic."""
    previous = await control.set_alias(model_name, body.alias, body.version, by=caller)
    return json_response({"model": model_name, "alias": body.alias, "version": body.version, "previous": previous})


@router.post("/models/{model_name}/rollback", summary="Move an alias back to its previous version",
             dependencies=[DEPLOY])
async def rollback(control: Control, caller: By, model_name: str, body: RollbackBody | None = None) -> Response:
    """Move an alias back to the version it pointed at before; 409 when it has no history."""
    alias = body.alias if body else "production"
    left, version = await control.rollback(model_name, alias, by=caller)
    return json_response({"model": model_name, "alias": alias, "version": version, "previous": left})


@router.get("/models/{model_name}/traffic", summary="Show the canary split and the shadow version",
            dependencies=[READ])
async def get_traffic(control: Control, model_name: str) -> Response:
    """The canary split and the shadow version of a model."""
    info = await control.model(model_name)
    canary = {"version": info.canary_version, "percent": info.canary_percent} if info.canary_version else None
    return json_response({"canary": canary, "shadow": info.shadow_version})


@router.put("/models/{model_name}/traffic", summary="Set (or clear) the canary split and the shadow version",
            dependencies=[DEPLOY])
async def set_traffic(control: Control, caller: By, model_name: str, body: TrafficBody) -> Response:
    """Set (or clear) the canary split and the shadow version; both must be versions other than production."""
    await control.set_traffic(
        model_name, canary_version=body.canary.version if body.canary else None,
        canary_percent=body.canary.percent if body.canary else 0.0, shadow_version=body.shadow, by=caller)
    return json_response(body.model_dump())


def _name(value: str, field: str) -> str:
    if not is_valid_name(value):
        raise InvalidInput(f"{field} {value!r} is not valid: letters, digits, '.', '_' and '-'", field=field)
    return value
