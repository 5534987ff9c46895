"""``GET /metrics``: the inference engine's Prometheus metrics (text exposition format)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from mlgate.inference.dataplane import DataPlane
from mlgate.protocols.body import dataplane

__all__ = ["router"]

router = APIRouter(tags=["Metrics"])
Plane = Annotated[DataPlane, Depends(dataplane)]


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}})
async def metrics(plane: Plane) -> Response:
    body, content_type = plane.metrics.render()
    return Response(body, media_type=content_type)
