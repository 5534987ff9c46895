"""Versions of the registry's REST API: every route lives under ``/api/<version>/``.

``API_VERSIONS`` lists the versions served (the same routes under each prefix until a version changes a
route). A handler that needs to know which version was called declares ``version: ApiVersionDep``.
Deprecated versions (setting ``deprecated_api_versions``) still answer, with ``Deprecation`` and ``Sunset``
headers added by ``mlgate.edge.deprecation``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request

from mlgate.protocols.state import server_state
from mlgate.settings import ApiDeprecation

__all__ = ["API_VERSIONS", "ApiVersion", "ApiVersionDep", "api_version", "include_versioned"]

API_VERSIONS: tuple[str, ...] = ("v1",)
"""The registry API versions this server answers, oldest first."""


@dataclass(frozen=True, slots=True)
class ApiVersion:
    """The API version a request was made under, and whether it is deprecated."""
    name: str
    deprecated: bool = False


def api_version(request: Request) -> ApiVersion:
    """The API version of this request, from its path (``/api/<version>/...``)."""
    parts = request.url.path.split("/", 3)
    name = parts[2] if len(parts) > 2 and parts[1] == "api" else API_VERSIONS[-1]
    deprecated: Mapping[str, ApiDeprecation] = server_state(request).settings.deprecated_api_versions
    return ApiVersion(name, name in deprecated)


ApiVersionDep = Annotated[ApiVersion, Depends(api_version)]


def include_versioned(app: FastAPI, router: APIRouter, versions: tuple[str, ...] | None = None) -> None:
    """Serve ``router`` under ``/api/<version>`` for each version (default: ``API_VERSIONS``)."""
    for name in versions or API_VERSIONS:
        app.include_router(router, prefix=f"/api/{name}")
