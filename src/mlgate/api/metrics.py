"""``GET /metrics``: the inference engine's Prometheus metrics (text exposition format).

The ``metrics`` setting says who may read them: ``open`` (every caller), ``token`` (only a request with
``Authorization: Bearer <metrics_token>``, as Prometheus' ``authorization`` scrape option sends it; else 401),
or ``off`` (the route does not exist). The series name every model, closed ones included.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from mlgate.errors import InvalidCredentials, Unauthenticated
from mlgate.inference.dataplane import DataPlane
from mlgate.protocols.body import dataplane

__all__ = ["router"]

router = APIRouter(tags=["Metrics"])
Plane = Annotated[DataPlane, Depends(dataplane)]


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}})
async def metrics(plane: Plane, request: Request) -> Response:
    """Prometheus metrics (text exposition format), open, behind ``metrics_token``, or off (setting ``metrics``)."""
    token = plane.settings.metrics_token
    if plane.settings.metrics == "token" and token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if not given:
            raise Unauthenticated("/metrics needs 'Authorization: Bearer <metrics_token>' (setting metrics = token)")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
            raise InvalidCredentials()
    body, content_type = plane.metrics.render()
    return Response(body, media_type=content_type)
