"""``grpc.health.v1.Health`` for load balancers and ``grpcurl``: the server, the V2 service, and each model.

Source: gRPC Health Checking Protocol (grpc/grpc ``doc/health-checking.md``). The service names answered:
``""`` and ``inference.GRPCInferenceService`` (SERVING once the server is ready, ``DataPlane.ready``) and a
model's name (SERVING while the model is READY; like V2 model readiness it needs the ``predict`` right on
the model, so it asks for the caller's ``authorization`` metadata unless the model is open to anonymous
callers). An unknown name is NOT_FOUND on Check and SERVICE_UNKNOWN on Watch, as the protocol asks. Watch
sends the status, then every change (looked at once a second).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from mlgate.auth.caller import Action
from mlgate.errors import MlgateError, ModelNotFound, NotFound
from mlgate.protocols.grpc.errors import status_of
from mlgate.protocols.grpc.service import SERVICE_NAME, Context, credentials
from mlgate.protocols.security import admit
from mlgate.protocols.state import ServerState

__all__ = ["HEALTH_SERVICE", "HealthService"]

HEALTH_SERVICE = "grpc.health.v1.Health"
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
WATCH_INTERVAL_S = 1.0


class HealthService:
    """Check and Watch on ``server``'s data plane."""

    def __init__(self, server: ServerState) -> None:
        self.server = server

    async def status(self, service: str, context: Context) -> Any:
        """SERVING or NOT_SERVING for ``service``; raises ModelNotFound (unknown name), 401/403 (a model the
        caller may not use)."""
        plane = self.server.dataplane
        if service in ("", SERVICE_NAME):
            return _SERVING if plane.ready() else _NOT_SERVING
        await admit(credentials(context, self.server), Action.PREDICT, service, count=False)
        return _SERVING if plane.model_status(service).ready else _NOT_SERVING

    async def check(self, request: Any, context: Context) -> Any:
        try:
            return health_pb2.HealthCheckResponse(status=await self.status(request.service, context))
        except MlgateError as exc:
            status = status_of(exc)
            context.set_trailing_metadata(status.trailers)
            await context.abort(status.code, status.message)
        return None  # not reached: abort raises

    async def watch(self, request: Any, context: Context) -> AsyncIterator[Any]:
        last = None
        while True:
            try:
                current = await self.status(request.service, context)
            except (ModelNotFound, NotFound):
                current = _UNKNOWN
            except MlgateError as exc:
                status = status_of(exc)
                context.set_trailing_metadata(status.trailers)
                await context.abort(status.code, status.message)
            if current != last:
                yield health_pb2.HealthCheckResponse(status=current)
                last = current
            await asyncio.sleep(WATCH_INTERVAL_S)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(HEALTH_SERVICE, {
            "Check": grpc.unary_unary_rpc_method_handler(
                self.check, request_deserializer=health_pb2.HealthCheckRequest.FromString,
                response_serializer=health_pb2.HealthCheckResponse.SerializeToString),
            "Watch": grpc.unary_stream_rpc_method_handler(
                self.watch, request_deserializer=health_pb2.HealthCheckRequest.FromString,
                response_serializer=health_pb2.HealthCheckResponse.SerializeToString),
        })
