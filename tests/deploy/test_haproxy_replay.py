"""deploy/haproxy/haproxy.cfg when a replica dies with requests in its listen backlog (SIGKILL).

The kernel accepts connections for a listening process until it is gone, then resets them: HAProxy has sent
the request and gets nothing back. Before ``retry-on ... empty-response``, a request that was not the first on
its client's keep-alive connection was then dropped silently (the client saw the connection close without an
answer, HAProxy logged nothing): the local cluster's SIGKILL step lost requests it had never run. The shipped
configuration replays such an inference request on another replica, and never replays a job submission.
The "replica" here is a process that listens and never accepts, killed while a request waits in its backlog.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import socket
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

ROOT = Path(__file__).resolve().parents[2]
HAPROXY = os.environ.get("HAPROXY", "/usr/sbin/haproxy")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica(ThreadingHTTPServer):
    """Ready (200 on /v2/health/ready) and answers every POST with 200; records the paths it was sent."""

    def __init__(self) -> None:
        self.posts: list[str] = []
        replica = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._answer()

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                replica.posts.append(self.path)
                self._answer()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


DYING = """
import http.server, pathlib, time

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):  # ready, like a replica until it is killed
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def do_POST(self):  # takes the request, never answers: running it when the SIGKILL comes
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        pathlib.Path("{mark}").write_text(self.path)
        time.sleep(120)
    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", {port}), Handler).serve_forever()
"""
"""r2: a replica that answers its health checks and takes POSTs without ever answering them."""


@pytest.fixture
def balancer(tmp_path: Path) -> Iterator[tuple[str, Replica, subprocess.Popen[bytes], Replica]]:
    """HAProxy with the shipped configuration over r1 and r3 (ready, answer) and r2 (ready, never answers)."""
    if not Path(HAPROXY).exists():
        if os.environ.get("MLGATE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"HAProxy is not installed at {HAPROXY}")
        pytest.skip(f"HAProxy is not installed at {HAPROXY}")
    r1, r3 = Replica(), Replica()
    dying_port = _free_port()
    dying = subprocess.Popen([sys.executable, "-c", DYING.format(port=dying_port, mark=tmp_path / "received")])
    deadline = time.monotonic() + 10
    while True:  # r2 listens before HAProxy first checks it
        try:
            socket.create_connection(("127.0.0.1", dying_port), timeout=1).close()
            break
        except OSError:
            assert dying.poll() is None and time.monotonic() < deadline, "r2 did not start"
            time.sleep(0.02)
    lb_port, stats_port = _free_port(), _free_port()
    env = {**os.environ, "MLGATE_LB_BIND": f"127.0.0.1:{lb_port}", "MLGATE_STATS_BIND": f"127.0.0.1:{stats_port}",
           "MLGATE_REPLICA_1": r1.address, "MLGATE_REPLICA_2": f"127.0.0.1:{dying_port}",
           "MLGATE_REPLICA_3": r3.address}
    with (tmp_path / "haproxy.log").open("wb") as log:
        haproxy = subprocess.Popen([HAPROXY, "-f", str(ROOT / "deploy" / "haproxy" / "haproxy.cfg"), "-db"],
                                   stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", lb_port), timeout=1).close()
                break
            except OSError:
                assert haproxy.poll() is None and time.monotonic() < deadline, (tmp_path / "haproxy.log").read_text()
                time.sleep(0.02)
        while set(_states(stats_port).values()) != {"UP"}:
            assert time.monotonic() < deadline, _states(stats_port)
            time.sleep(0.05)
        yield f"http://127.0.0.1:{lb_port}", r1, dying, r3
    finally:
        haproxy.terminate()
        haproxy.wait(timeout=10)
        if dying.poll() is None:
            dying.kill()
            dying.wait()
        for replica in (r1, r3):
            replica.shutdown()
            replica.server_close()


def _states(stats_port: int) -> dict[str, str]:
    try:
        text = httpx.get(f"http://127.0.0.1:{stats_port}/stats;csv", timeout=2).text.lstrip("# ")
    except httpx.TransportError:
        return {}
    return {row["svname"]: row["status"] for row in csv.DictReader(io.StringIO(text)) if row["pxname"] == "replicas"}


def _request_dies_with_r2(url: str, dying: subprocess.Popen[bytes], mark: Path, path: str,
                          headers: dict[str, str]) -> tuple[str, int]:
    """On one keep-alive connection: a GET (any replica answers it), then ``path`` until one lands on r2
    (round robin), which has taken it when it is SIGKILLed. That request's outcome, and how many were sent."""
    outcomes: list[str] = []

    def client() -> None:
        with httpx.Client(base_url=url, timeout=10) as c:
            assert c.get("/v2/health/ready").status_code == 200  # the next ones are not the first on it
            while not mark.exists() and len(outcomes) < 10:
                try:
                    outcomes.append(str(c.post(path, json={}, headers=headers).status_code))
                except httpx.TransportError as exc:
                    outcomes.append(type(exc).__name__)

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + 10
    while not mark.exists():  # r2 has one
        assert time.monotonic() < deadline and thread.is_alive(), f"no request reached r2: {outcomes}"
        time.sleep(0.01)
    dying.send_signal(signal.SIGKILL)
    dying.wait()
    thread.join(timeout=20)
    assert outcomes[:-1] == ["200"] * (len(outcomes) - 1), outcomes  # answered by r1 and r3
    return outcomes[-1], len(outcomes)


@pytest.mark.parametrize("path", ["/v2/models/m/infer", "/v2/models/m/versions/2/infer", "/v1/models/m:predict",
                                  "/v1/embeddings"])
def test_an_inference_sent_to_a_replica_as_it_dies_is_answered_by_another(
        balancer: tuple[str, Replica, subprocess.Popen[bytes], Replica], tmp_path: Path, path: str) -> None:
    url, r1, dying, r3 = balancer
    outcome, sent = _request_dies_with_r2(url, dying, tmp_path / "received", path, {})
    assert outcome == "200"
    assert r1.posts + r3.posts == [path] * sent  # the one r2 took was replayed on another replica


@pytest.mark.parametrize(("path", "headers"), [("/api/v1/jobs", {}),
                                               ("/v2/models/m/infer", {"Prefer": "respond-async"}),
                                               ("/api/v1/keys", {})])
def test_a_write_sent_to_a_replica_as_it_dies_is_never_replayed(
        balancer: tuple[str, Replica, subprocess.Popen[bytes], Replica], tmp_path: Path, path: str,
        headers: dict[str, str]) -> None:
    url, r1, dying, r3 = balancer
    outcome, sent = _request_dies_with_r2(url, dying, tmp_path / "received", path, headers)
    assert outcome != "200"
    assert r1.posts + r3.posts == [path] * (sent - 1)  # the one r2 took is never sent again: it may have run
