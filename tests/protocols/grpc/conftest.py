"""An in-process app serving gRPC on a free port (its lifespan runs the grpc.aio server), and a raw stub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from mlgate.protocols.grpc import grpc_service_pb2_grpc
from tests.processes import free_port
from tests.secure import SecureApp, secure_app


@dataclass
class GrpcApp:
    sec: SecureApp
    address: str
    """``127.0.0.1:port`` of the gRPC service."""
    channel: grpc.aio.Channel
    stub: grpc_service_pb2_grpc.GRPCInferenceServiceStub
    """The service's stub generated from mlgate's own proto (for what tritonclient does not let one send)."""


@asynccontextmanager
async def grpc_app(repository: Path, **settings: Any) -> AsyncIterator[GrpcApp]:
    port = free_port()
    async with secure_app(repository, grpc_port=port, **settings) as sec:
        address = f"127.0.0.1:{port}"
        async with grpc.aio.insecure_channel(address) as channel:
            yield GrpcApp(sec, address, channel, grpc_service_pb2_grpc.GRPCInferenceServiceStub(channel))


def auth(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)
