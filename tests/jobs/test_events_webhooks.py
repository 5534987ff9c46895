"""A job's Server-Sent Events read with an SSE client library (httpx-sse), progress reported by a python
model, and webhooks: signed, delivered to a real local HTTP server, refused at submission for other hosts."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest
from httpx_sse import aconnect_sse

from tests.jobs_helpers import JOBS, jobs_repo, sleepy_body, sum_body, wait_for
from tests.secure import bearer, secure_app

pytestmark = pytest.mark.anyio


async def test_events_show_queued_running_progress_succeeded(tmp_path: Path) -> None:
    repo = jobs_repo(tmp_path / "models")
    async with secure_app(repo, data_dir=tmp_path / "d", jobs_concurrency=1, jobs_poll_interval_s=0.1) as sec:
        await sec.user("ann")
        ann = bearer(await sec.key("ann"))
        blocker = (await sec.client.post(JOBS, json={"model": "sleepy", "request": sleepy_body(0.5)},
                                         headers=ann)).json()
        await wait_for(sec.client, blocker["id"], {"running"}, ann)
        body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [3]}],
                "parameters": {"steps": 4, "step_s": 0.3}}
        job = (await sec.client.post(JOBS, json={"model": "progress", "request": body}, headers=ann)).json()
        events: list[tuple[str, dict[str, Any]]] = []
        async with aconnect_sse(sec.client, "GET", f"{JOBS}/{job['id']}/events", headers=ann) as source:
            assert source.response.status_code == 200
            async for event in source.aiter_sse():
                events.append((event.event, event.json()))
        kinds = [e[1]["status"] if e[0] == "status" else "progress" for e in events]
        assert kinds[0] == "queued" and events[0][1]["position"] == 1
        assert kinds[-1] == "succeeded" and events[-1][1]["progress"] == 1.0
        assert "running" in kinds and kinds.index("running") < kinds.index("progress") < len(kinds) - 1, kinds
        steps = [e[1]["progress"] for e in events if e[0] == "progress"]
        assert steps == sorted(steps) and all(0 < p <= 1 for p in steps), steps
        result = (await sec.client.get(f"{JOBS}/{job['id']}/result", headers=ann)).json()
        assert result["outputs"][0]["data"] == [6.0]


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        pass


@pytest.fixture
def webhook_server() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A real HTTP server on a free local port; yields its ``host:port`` and the requests it received."""
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Handler", (_Receiver,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


async def test_a_webhook_reaches_an_allowed_host_with_a_valid_signature(
        tmp_path: Path, webhook_server: tuple[str, list[tuple[dict[str, str], bytes]]]) -> None:
    host, received = webhook_server
    repo = jobs_repo(tmp_path / "models")
    async with secure_app(repo, data_dir=tmp_path / "d", jobs_webhook_hosts=[host]) as sec:
        await sec.user("ann")
        ann = bearer(await sec.key("ann"))
        url = f"http://{host}/hooks/mlgate"
        job = (await sec.client.post(JOBS, json={"model": "sum", "request": sum_body(), "webhook": url},
                                     headers=ann)).json()
        await wait_for(sec.client, job["id"], {"succeeded"}, ann)
        with anyio.fail_after(10):
            while not received:
                await anyio.sleep(0.02)
        headers, body = received[0]
        secret = (await sec.client.get(f"{JOBS}/webhook-secret", headers=ann)).json()["secret"]
        expected = hmac.new(secret.encode(), headers["x-mlgate-timestamp"].encode() + b"." + body,
                            hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-mlgate-signature"], f"sha256={expected}")
        payload = json.loads(body)
        assert payload["id"] == job["id"] and payload["status"] == "succeeded"
        # another key has another secret: it could not have signed this
        other = (await sec.client.get(f"{JOBS}/webhook-secret", headers=bearer(await sec.key("ann")))).json()
        assert other["secret"] != secret


async def test_a_webhook_fires_with_status_cancelled_when_the_job_is_cancelled_and_expired_when_it_expires(
        tmp_path: Path, webhook_server: tuple[str, list[tuple[dict[str, str], bytes]]]) -> None:
    host, received = webhook_server
    repo = jobs_repo(tmp_path / "models")
    async with secure_app(repo, data_dir=tmp_path / "d", jobs_webhook_hosts=[host], jobs_result_ttl_s=1.0,
                          jobs_poll_interval_s=0.1) as sec:
        await sec.user("ann")
        ann = bearer(await sec.key("ann"))
        url = f"http://{host}/hooks/mlgate"
        job = (await sec.client.post(JOBS, json={"model": "sleepy", "request": sleepy_body(5), "webhook": url},
                                     headers=ann)).json()
        await wait_for(sec.client, job["id"], {"running"}, ann)
        assert (await sec.client.delete(f"{JOBS}/{job['id']}", headers=ann)).json()["status"] == "cancelled"
        with anyio.fail_after(10):
            while len(received) < 2:  # cancelled, then expired once the retention time passed
                await anyio.sleep(0.02)
        secret = (await sec.client.get(f"{JOBS}/webhook-secret", headers=ann)).json()["secret"]
        statuses = []
        for headers, body in received:
            expected = hmac.new(secret.encode(), headers["x-mlgate-timestamp"].encode() + b"." + body,
                                hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers["x-mlgate-signature"], f"sha256={expected}")
            payload = json.loads(body)
            assert payload["id"] == job["id"]
            statuses.append(payload["status"])
        assert statuses == ["cancelled", "expired"]


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "http://localhost:1/x",
                                 "ftp://127.0.0.1/x", "not a url"])
async def test_a_webhook_to_a_host_not_allowed_is_refused_at_submission(tmp_path: Path, url: str) -> None:
    repo = jobs_repo(tmp_path / "models")
    async with secure_app(repo, data_dir=tmp_path / "d", jobs_webhook_hosts=["127.0.0.1:9"]) as sec:
        await sec.user("ann")
        ann = bearer(await sec.key("ann"))
        response = await sec.client.post(JOBS, json={"model": "sum", "request": sum_body(), "webhook": url},
                                         headers=ann)
        assert response.status_code == 400, response.text
        assert response.json()["field"] == "webhook"
        assert (await sec.client.get(JOBS, headers=ann)).json()["items"] == []


async def test_jobs_on_a_batching_model_are_merged_and_each_told_the_progress(tmp_path: Path) -> None:
    from tests.fakes import write_python_model
    from tests.jobs_helpers import PROGRESS_MODEL

    write_python_model(tmp_path / "models", "batched", PROGRESS_MODEL,
                       '[batching]\nmax_batch_size = 8\nmax_queue_delay_ms = 300\n'
                       '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n',
                       '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n')
    async with secure_app(tmp_path / "models", data_dir=tmp_path / "d", jobs_concurrency=8,
                          jobs_poll_interval_s=0.05) as sec:
        await sec.user("ann")
        ann = bearer(await sec.key("ann"))
        body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}],
                "parameters": {"steps": 2, "step_s": 0.5}}
        started = anyio.current_time()
        ids = [(await sec.client.post(JOBS, json={"model": "batched", "request": body}, headers=ann)).json()["id"]
               for _ in range(8)]
        for job_id in ids:
            job = await wait_for(sec.client, job_id, {"succeeded", "failed"}, ann)
            assert job["status"] == "succeeded" and job["progress"] == 1.0
        elapsed = anyio.current_time() - started
        assert elapsed < 4.0, elapsed  # one run of 1 s, not eight (8 s)


async def test_on_postgresql_events_follow_another_processs_change_at_once(tmp_path: Path, postgres_url: str) -> None:
    # The job's row changed through another connection, as a worker elsewhere would: the stream hears it from
    # PostgreSQL's notification; while listening it reads the job only every 5 s by itself, longer than the job.
    from mlgate.db.engine import Database
    from mlgate.db.queries.jobs import JobStore

    repo = jobs_repo(tmp_path / "models")
    async with secure_app(repo, data_dir=tmp_path / "d", database_url=postgres_url) as sec:
        jobs = sec.app.state.mlgate.jobs
        with anyio.fail_after(10):
            while not jobs.listening:
                await anyio.sleep(0.02)
        assert jobs.events_poll_s == 5.0
        await sec.user("ann")
        ann = bearer(await sec.key("ann"))
        job = (await sec.client.post(JOBS, json={"model": "sleepy", "request": sleepy_body(3)}, headers=ann)).json()
        await wait_for(sec.client, job["id"], {"running"}, ann)
        events: list[tuple[str, dict[str, Any]]] = []

        async def read() -> None:
            async with aconnect_sse(sec.client, "GET", f"{JOBS}/{job['id']}/events", headers=ann) as source:
                async for event in source.aiter_sse():
                    events.append((event.event, event.json()))

        elsewhere = Database(postgres_url)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(read)
                await anyio.sleep(1.0)  # the stream is waiting on its job
                row = await JobStore(elsewhere).get(job["id"])
                assert row is not None and row.status == "running"
                await JobStore(elsewhere).progress(row, 0.25)
        finally:
            await elsewhere.dispose()
    kinds = [e[1]["status"] if e[0] == "status" else e[1]["progress"] for e in events]
    assert kinds == ["running", 0.25, "succeeded"], kinds
