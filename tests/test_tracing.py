"""OpenTelemetry traces (mlgate.tracing), end to end: a real ``mlgate serve`` and a real ``mlgate worker``
(RabbitMQ, PostgreSQL) export over OTLP/HTTP to a collector this test runs, which decodes the protobuf
requests. One V2 request and one job: the spans arrive, linked parent to child across the two processes
(the job's traceparent rides on its database row), with their attributes. Off by default: no SDK import.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from mlgate.settings import Settings
from tests.jobs_helpers import JOBS, jobs_repo, rabbitmq_queue, sleepy_body, worker_process  # noqa: F401 - fixture
from tests.processes import admin_key, serve_process

pytest.importorskip("opentelemetry.proto", reason="the otel extra is not installed")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402


class Collector:
    """An OTLP/HTTP receiver on a free port: every span POSTed to /v1/traces, with its service name."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf"
                export = ExportTraceServiceRequest()
                export.ParseFromString(body)
                collector.add(export)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, export: Any) -> None:
        for resource_spans in export.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}
                    with self.lock:
                        self.spans.append({
                            "name": span.name, "trace": span.trace_id.hex(), "id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex() or None, "kind": span.kind, "service": service,
                            "attributes": attributes, "links": [link.span_id.hex() for link in span.links]})

    def named(self, prefix: str) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.spans if s["name"].startswith(prefix)]

    def wait(self, prefix: str, count: int = 1, timeout_s: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while len(found := self.named(prefix)) < count:
            assert time.monotonic() < deadline, f"no {prefix!r} span arrived; got {[s['name'] for s in self.spans]}"
            time.sleep(0.05)
        return found


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    c.thread.start()
    try:
        yield c
    finally:
        c.server.shutdown()
        c.server.server_close()


def test_a_request_and_a_job_are_traced_across_server_and_worker(
        tmp_path: Path, collector: Collector, postgres_url: str, request: pytest.FixtureRequest) -> None:
    broker, queue = request.getfixturevalue("rabbitmq_queue")
    repo = jobs_repo(tmp_path / "models")
    env = {"MLGATE_OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100",
           "MLGATE_DATABASE_URL": postgres_url, "MLGATE_JOBS_BROKER": broker, "MLGATE_JOBS_QUEUE": queue,
           "MLGATE_DATA_DIR": str(tmp_path / "data")}
    with serve_process(repo, tmp_path / "serve.log", env) as address, \
            worker_process(repo, tmp_path / "worker.log", {**env, "OTEL_SERVICE_NAME": "mlgate-worker"}):
        url = f"http://{address}"
        # A V2 request, continuing the caller's trace.
        caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        answered = httpx.post(f"{url}/v2/models/sleepy/infer", json=sleepy_body(0.0, 3.0), timeout=10,
                              headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"})
        assert answered.status_code == 200, answered.text
        # A job, run by the worker process.
        key = {"Authorization": f"Bearer {admin_key(url)}"}
        submitted = httpx.post(f"{url}{JOBS}", json={"model": "sleepy", "request": sleepy_body(0.0, 5.0)},
                               headers=key, timeout=10)
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}{JOBS}/{job_id}", headers=key, timeout=5).json()["status"] != "succeeded":
            assert time.monotonic() < deadline, "the job did not succeed"
            time.sleep(0.05)

        (infer,) = [s for s in collector.wait("HTTP POST /v2/models/{model_name}/infer")
                    if s["trace"] == caller_trace]
        assert infer["parent"] == caller_span and infer["kind"] == 2  # SPAN_KIND_SERVER
        assert infer["service"] == "mlgate"
        assert infer["attributes"]["http.route"] == "/v2/models/{model_name}/infer"
        assert infer["attributes"]["http.response.status_code"] == 200
        assert infer["attributes"]["mlgate.model"] == "sleepy"
        assert infer["attributes"]["mlgate.model_version"] == "1"
        assert infer["attributes"]["mlgate.request_id"] == answered.headers["X-Request-ID"]
        model_calls = collector.wait("model sleepy", 2)
        (infer_call,) = [s for s in model_calls if s["trace"] == caller_trace]
        assert infer_call["parent"] == infer["id"]
        assert infer_call["attributes"]["mlgate.batch.rows"] == 1
        assert infer_call["attributes"]["mlgate.batch.requests"] == 1

        (post,) = [s for s in collector.wait("HTTP POST /api/v1/jobs") if s["trace"] != caller_trace]
        assert post["attributes"]["http.response.status_code"] == 202
        (submit,) = collector.wait("job submit")
        assert submit["trace"] == post["trace"] and submit["parent"] == post["id"]
        assert submit["kind"] == 4 and submit["attributes"]["mlgate.job.id"] == job_id  # SPAN_KIND_PRODUCER
        (run,) = collector.wait("job run")
        assert run["service"] == "mlgate-worker"  # another process: the context crossed the broker and database
        assert run["trace"] == submit["trace"] and run["parent"] == submit["id"]
        assert run["kind"] == 5 and run["attributes"]["mlgate.job.attempt"] == 1  # SPAN_KIND_CONSUMER
        (job_call,) = [s for s in model_calls if s["trace"] == submit["trace"]]
        assert job_call["service"] == "mlgate-worker" and job_call["parent"] == run["id"]


def test_tracing_is_off_by_default_and_imports_nothing() -> None:
    code = ("import sys; from mlgate.app import create_app; from mlgate.settings import Settings; "
            "from mlgate import tracing; app = create_app(Settings()); "
            "print(tracing.active(), any(m.startswith('opentelemetry.sdk') for m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


def test_an_endpoint_that_is_not_http_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValidationError, match="otel_exporter_otlp_endpoint"):
        Settings(otel_exporter_otlp_endpoint="grpc://collector:4317")


def test_spans_carry_their_parents_through_a_traceparent_and_a_context(
        collector: Collector, monkeypatch: pytest.MonkeyPatch) -> None:
    # In this process, with this module's provider put back afterwards: a job submitted in one place and run in
    # another continue one trace through the traceparent its row carries; a batch's span has its first
    # request's context as parent and the others as links.
    from mlgate import tracing
    from mlgate.settings import Settings

    monkeypatch.setattr(tracing, "_tracer", None)
    monkeypatch.setattr(tracing, "_provider", None)
    assert tracing.configure(Settings(otel_exporter_otlp_endpoint=collector.url, otel_service_name="in-process"))
    provider = tracing._provider
    try:
        assert tracing.active() and tracing.configure(Settings())  # the first configuration wins
        with tracing.span("job submit", kind="producer", attributes={"mlgate.model": "m"}):
            traceparent = tracing.inject()
            first = tracing.current_context()
            tracing.annotate({"mlgate.job.id": "j1"})
        with tracing.span("request two", kind="server"):
            second = tracing.current_context()
        assert traceparent is not None and traceparent.startswith("00-")
        with tracing.span("job run", kind="consumer", traceparent=traceparent):
            pass
        with tracing.span("model m", parent=first, links=[second]):
            pass
        with pytest.raises(ValueError), tracing.span("model failing"):
            raise ValueError("recorded on the span")
        tracing.flush()
        [submit] = collector.wait("job submit")
        [run] = collector.wait("job run")
        [model] = collector.wait("model m")
        [other] = collector.wait("request two")
        assert submit["service"] == "in-process" and submit["attributes"]["mlgate.job.id"] == "j1"
        assert run["parent"] == submit["id"] and run["trace"] == submit["trace"]
        assert model["parent"] == submit["id"] and model["links"] == [other["id"]]
        collector.wait("model failing")
    finally:
        provider.shutdown()


def test_grpc_calls_get_a_server_span_under_the_callers_traceparent(
        collector: Collector, monkeypatch: pytest.MonkeyPatch, examples_repo: Path) -> None:
    # In this process (provider put back afterwards): the gRPC service on its port, called through a real channel.
    import asyncio

    import grpc

    from mlgate import tracing
    from mlgate.protocols.grpc import grpc_service_pb2 as pb
    from tests.protocols.grpc.conftest import auth, grpc_app
    from tests.protocols.grpc.test_errors import good

    monkeypatch.setattr(tracing, "_tracer", None)
    monkeypatch.setattr(tracing, "_provider", None)
    assert tracing.configure(Settings(otel_exporter_otlp_endpoint=collector.url, otel_service_name="grpc-test"))
    provider = tracing._provider
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

    async def calls() -> grpc.StatusCode:
        async with grpc_app(examples_repo) as app:
            await app.sec.user("alice")
            key = await app.sec.key("alice")
            await app.stub.ModelInfer(good(), metadata=(*auth(key), ("x-request-id", "traced-1"),
                                                        ("traceparent", f"00-{caller_trace}-{caller_span}-01")))
            try:
                await app.stub.ModelInfer(pb.ModelInferRequest(model_name="no-such-model"), metadata=auth(key))
            except grpc.aio.AioRpcError as exc:
                return exc.code()
            raise AssertionError("a call on a missing model succeeded")

    try:
        assert asyncio.run(calls()) == grpc.StatusCode.NOT_FOUND
        tracing.flush()
        spans = collector.wait("gRPC /inference.GRPCInferenceService/ModelInfer", count=2)
    finally:
        provider.shutdown()
    ok = next(s for s in spans if s["attributes"]["mlgate.request_id"] == "traced-1")
    missing = next(s for s in spans if s is not ok)
    assert ok["trace"] == caller_trace and ok["parent"] == caller_span and ok["kind"] == 2  # SPAN_KIND_SERVER
    assert {k: ok["attributes"][k] for k in ("rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code",
                                             "mlgate.model")} == {
        "rpc.system": "grpc", "rpc.service": "inference.GRPCInferenceService", "rpc.method": "ModelInfer",
        "rpc.grpc.status_code": 0, "mlgate.model": "breast-cancer"}
    assert missing["parent"] is None and missing["attributes"]["rpc.grpc.status_code"] == 5  # NOT_FOUND
    [model] = [s for s in collector.named("model breast-cancer") if s["trace"] == caller_trace]
    assert model["parent"] == ok["id"]  # the batch's runtime call, under the call that it served
