"""The standard services (health, reflection), and the generated modules: fresh, and wire-compatible with
the spec's as tritonclient ships them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from mlgate.protocols.grpc import grpc_service_pb2
from tests.protocols.grpc.conftest import auth, grpc_app

ROOT = Path(__file__).resolve().parents[3]
SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.mark.anyio
async def test_reflection_lists_and_describes_the_service_and_health_answers(examples_repo: Path) -> None:
    async with grpc_app(examples_repo) as app:
        await app.sec.user("alice")
        key = await app.sec.key("alice", models=["digits"])
        reflect = reflection_pb2_grpc.ServerReflectionStub(app.channel)
        asks = [reflection_pb2.ServerReflectionRequest(list_services=""),
                reflection_pb2.ServerReflectionRequest(file_containing_symbol="inference.GRPCInferenceService")]
        answers = [answer async for answer in reflect.ServerReflectionInfo(iter(asks))]
        services = {s.name for s in answers[0].list_services_response.service}
        assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= services
        files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
                 for raw in answers[1].file_descriptor_response.file_descriptor_proto]
        methods = {m.name for f in files for s in f.service for m in s.method}
        assert {"ModelInfer", "ModelStreamInfer", "ModelMetadata", "RepositoryIndex"} <= methods

        health = health_pb2_grpc.HealthStub(app.channel)
        for service in ("", "inference.GRPCInferenceService"):
            assert (await health.Check(health_pb2.HealthCheckRequest(service=service))).status == SERVING
        # A model's health needs the predict right on it, as V2 model readiness does.
        digits = health_pb2.HealthCheckRequest(service="digits")
        assert (await health.Check(digits, metadata=auth(key))).status == SERVING
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await health.Check(digits)
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as other:
            await health.Check(health_pb2.HealthCheckRequest(service="breast-cancer"), metadata=auth(key))
        assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await health.Check(health_pb2.HealthCheckRequest(service="no-such-model"),
                               metadata=auth(await app.sec.key("alice", name="all models")))
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        watch = health.Watch(digits, metadata=auth(key))
        assert (await watch.read()).status == SERVING
        watch.cancel()


def test_the_committed_generated_modules_are_fresh(tmp_path: Path) -> None:
    """`make grpc` would change nothing: regenerate into a temporary folder and compare byte for byte.

    protoc runs in a process of its own, as `make grpc` runs it: in a test process that has other protobuf
    users loaded (TensorFlow's, for one), grpc_tools' compiler crashed the process."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "grpc_generate.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    generated = [Path(line) for line in done.stdout.splitlines() if line.strip()]
    assert len(generated) == 3, done.stdout
    for path in generated:
        committed = ROOT / "src" / path.relative_to(tmp_path)
        assert committed.read_bytes() == path.read_bytes(), f"{committed} is stale: run `make grpc`"


def test_messages_and_methods_are_those_of_the_spec_as_tritonclient_has_them() -> None:
    """Every message, field (name, number, type, label) and method of ours is the spec's, so clients generated
    from the spec's file talk to mlgate unchanged (tritonclient's own modules stand for the spec)."""
    from tritonclient.grpc import service_pb2 as spec  # imports alongside ours: we build in a pool of our own

    assert "tritonclient.grpc" in sys.modules and grpc_service_pb2.DESCRIPTOR.package == spec.DESCRIPTOR.package

    def fields(message: object) -> dict[str, tuple[int, int, str, bool]]:
        return {f.name: (f.number, f.type, f.message_type.full_name if f.message_type else "",
                         f.is_repeated) for f in message.fields}  # type: ignore[attr-defined]

    def walk(message: object) -> list[object]:
        return [message, *(m for nested in message.nested_types for m in walk(nested))]  # type: ignore[attr-defined]

    ours = [m for top in grpc_service_pb2.DESCRIPTOR.message_types_by_name.values() for m in walk(top)]
    assert len(ours) > 25
    for message in ours:
        theirs = spec.DESCRIPTOR.pool.FindMessageTypeByName(message.full_name)  # type: ignore[attr-defined]
        assert fields(message) == fields(theirs), message.full_name  # type: ignore[attr-defined]
    service = grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    their_service = spec.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    for method in service.methods:
        twin = their_service.methods_by_name[method.name]
        assert (method.input_type.full_name, method.output_type.full_name, method.client_streaming,
                method.server_streaming) == (twin.input_type.full_name, twin.output_type.full_name,
                                             twin.client_streaming, twin.server_streaming), method.name
