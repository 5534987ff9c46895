"""Around every gRPC call: one access-log line as REST's, and the client address through trusted proxies."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from mlgate.protocols.grpc import grpc_service_pb2 as pb
from tests.protocols.grpc.conftest import auth, grpc_app
from tests.protocols.grpc.test_errors import good

pytestmark = pytest.mark.anyio

SERVICE = "/inference.GRPCInferenceService"


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [dict(r.msg) for r in caplog.records if r.name == "mlgate.access" and isinstance(r.msg, dict)]


async def test_every_call_writes_one_access_line_with_status_duration_id_caller_and_peer(
    examples_repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlgate.access")
    async with grpc_app(examples_repo) as app:
        await app.sec.user("alice")
        key = await app.sec.key("alice")
        caller = "key:" + "_".join(key.split("_")[:2]) + " (user:alice)"
        await app.stub.ModelInfer(good(), metadata=(*auth(key), ("x-request-id", "ok-1")))
        bad = good()
        bad.inputs[0].datatype = "FP32"
        with pytest.raises(grpc.aio.AioRpcError):
            await app.stub.ModelInfer(bad, metadata=(*auth(key), ("x-request-id", "bad-2")))
        with pytest.raises(grpc.aio.AioRpcError):
            await app.stub.ModelInfer(good(), metadata=(("x-request-id", "anon-3"),))
        await app.stub.ServerLive(pb.ServerLiveRequest(), metadata=(("x-request-id", "live-4"),))
        stream = app.stub.ModelStreamInfer(metadata=(*auth(key), ("x-request-id", "stream-5")))
        for _ in range(3):
            await stream.write(good())
        await stream.done_writing()
        assert len([answer async for answer in stream]) == 3
    lines = {line["request_id"]: line for line in access_lines(caplog)}
    assert len(access_lines(caplog)) == 5  # one per call, the stream's three requests included
    expected = {
        "ok-1": ("ModelInfer", 0, "OK", caller),
        "bad-2": ("ModelInfer", 3, "INVALID_ARGUMENT", caller),
        "anon-3": ("ModelInfer", 16, "UNAUTHENTICATED", None),
        "live-4": ("ServerLive", 0, "OK", None),
        "stream-5": ("ModelStreamInfer", 0, "OK", caller),
    }
    for request_id, (method, status, name, who) in expected.items():
        line = lines[request_id]
        assert line["event"] == "request" and line["method"] == "GRPC", line
        assert (line["path"], line["status"], line["grpc_status"], line["caller"]) == (
            f"{SERVICE}/{method}", status, name, who), line
        assert line["client"] == line["peer"] == "127.0.0.1", line
        assert 0 < line["duration_ms"] < 10_000, line


async def test_no_access_line_when_the_access_log_is_off(examples_repo: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mlgate.access")
    async with grpc_app(examples_repo, access_log=False) as app:
        await app.stub.ServerLive(pb.ServerLiveRequest())
    assert access_lines(caplog) == []


async def anonymous_calls(address: str, forwarded: list[str]) -> list[grpc.StatusCode]:
    """The status of one anonymous ModelInfer call per ``x-forwarded-for`` value."""
    codes = []
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(f"{SERVICE}/ModelInfer", request_serializer=pb.ModelInferRequest.SerializeToString,
                                   response_deserializer=pb.ModelInferResponse.FromString)
        for value in forwarded:
            try:
                answer = await call(good(), metadata=(("x-forwarded-for", value),))
                assert np.frombuffer(answer.raw_output_contents[0], "<i8").shape == (2,)
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as exc:
                codes.append(exc.code())
    return codes


OK, OVER = grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_x_forwarded_for_from_an_untrusted_peer_does_not_change_the_bucket_nor_the_log(
    examples_repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlgate.access")
    tiers = {"anonymous": {"requests": "3/minute"}}
    async with grpc_app(examples_repo, anonymous_models=["breast-cancer"], rate_limit_tiers=tiers,
                        trusted_proxies=["10.0.0.0/8"]) as app:
        codes = await anonymous_calls(app.address, [f"198.51.100.{i}" for i in range(5)])
    assert codes == [OK, OK, OK, OVER, OVER]
    assert {(line["client"], line["peer"]) for line in access_lines(caplog)} == {("127.0.0.1", "127.0.0.1")}


async def test_x_forwarded_for_from_a_trusted_proxy_names_the_client_for_limits_and_logs(
    examples_repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlgate.access")
    tiers = {"anonymous": {"requests": "3/minute"}}
    async with grpc_app(examples_repo, anonymous_models=["breast-cancer"], rate_limit_tiers=tiers,
                        trusted_proxies=["127.0.0.1"]) as app:
        # A client-supplied entry left of the proxy's own is ignored: the proxy appended the real one.
        spread = await anonymous_calls(app.address, [f"203.0.113.66, 198.51.100.{i}" for i in range(5)])
        same = await anonymous_calls(app.address, ["198.51.100.0"] * 3)
    assert spread == [OK] * 5 and same == [OK, OK, OVER]
    clients = [(line["client"], line["peer"]) for line in access_lines(caplog)]
    assert clients == [(f"198.51.100.{i}", "127.0.0.1") for i in range(5)] + [("198.51.100.0", "127.0.0.1")] * 3
