"""The gRPC server: ``inference.GRPCInferenceService``, health and reflection on ``grpc_port``.

``serve_grpc(state)`` runs a ``grpc.aio`` server for as long as its ``async with``: the app's lifespan
(``mlgate.app``) opens it after the server state is built and closes it before the state closes, so every
HTTP process (``--workers N``) serves gRPC too, the processes sharing the port through ``SO_REUSEPORT``
(grpc's default). ``grpc_port = 0`` serves no gRPC. Messages over ``grpc_max_message_bytes`` (default: the
HTTP ``max_body_bytes``) are refused by grpc before they are decoded (RESOURCE_EXHAUSTED). With
``grpc_tls_cert`` and ``grpc_tls_key`` the port speaks TLS, else plaintext (terminate TLS in a proxy).
Server reflection (``grpc.reflection.v1alpha``) describes every service served, so ``grpcurl`` needs no
proto file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import structlog
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

from mlgate.protocols.grpc import grpc_service_pb2
from mlgate.protocols.grpc.health import HEALTH_SERVICE, HealthService
from mlgate.protocols.grpc.service import SERVICE_NAME, InferenceService
from mlgate.protocols.state import ServerState
from mlgate.settings import Settings

__all__ = ["GRACE_S", "build_server", "serve_grpc"]

log = structlog.get_logger("mlgate.protocols.grpc")

GRACE_S = 5.0
"""Seconds that calls in flight get to finish at shutdown before they are cancelled."""


def _reflection_pool() -> descriptor_pool.DescriptorPool:
    # The V2 messages live in a pool of their own (scripts/grpc_generate.py says why); reflection needs every
    # served service's file in one pool.
    pool = descriptor_pool.DescriptorPool()
    for module in (grpc_service_pb2, health_pb2, reflection_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    return pool


def build_server(state: ServerState) -> tuple[grpc.aio.Server, int]:
    """A ``grpc.aio`` server serving ``state`` on ``host:grpc_port``, not started; and the port bound.

    Raises RuntimeError when the port cannot be bound, OSError when the TLS files cannot be read."""
    settings: Settings = state.settings
    size = settings.effective_grpc_max_message_bytes
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", size),
                                      ("grpc.max_send_message_length", size)])
    server.add_registered_method_handlers(SERVICE_NAME, InferenceService(state).method_handlers())
    server.add_generic_rpc_handlers((HealthService(state).handler(),))
    reflection.enable_server_reflection((SERVICE_NAME, HEALTH_SERVICE, reflection.SERVICE_NAME), server,
                                        pool=_reflection_pool())
    address = f"{settings.host}:{settings.grpc_port}"
    if settings.grpc_tls_cert is not None and settings.grpc_tls_key is not None:
        credentials = grpc.ssl_server_credentials(
            [(settings.grpc_tls_key.read_bytes(), settings.grpc_tls_cert.read_bytes())])
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    return server, int(port)


@asynccontextmanager
async def serve_grpc(state: ServerState) -> AsyncIterator[int | None]:
    """Serve gRPC for the duration of the ``async with``; gives the port, None when ``grpc_port`` is 0."""
    if state.settings.grpc_port == 0:
        yield None
        return
    server, port = build_server(state)
    await server.start()
    log.info("grpc listening", address=f"{state.settings.host}:{port}",
             tls=state.settings.grpc_tls_cert is not None)
    try:
        yield port
    finally:
        await server.stop(GRACE_S)
