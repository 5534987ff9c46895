"""Slow and greedy clients against a real `mlgate serve` process, over raw sockets: headers or a body sent a byte
at a time get 408 and the connection closed once their time is up, a client address may hold only so many
connections, and the server keeps answering others meanwhile."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import serve_process


@pytest.fixture(scope="module")
def server(examples_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("serve-slow") / "serve.log"
    env = {"MLGATE_REQUEST_HEADER_TIMEOUT_S": "1.5", "MLGATE_REQUEST_BODY_TIMEOUT_S": "1.5",
           "MLGATE_MAX_CONNECTIONS_PER_CLIENT": "4"}
    with serve_process(examples_repo, log_path, env) as url:
        yield url


def _connect(url: str) -> socket.socket:
    host, port = url.split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _trickle(sock: socket.socket, data: bytes, seconds: float) -> float:
    """Send ``data`` a byte every 0.2 s for at most ``seconds``; returns when the server closed, or the time."""
    start = time.monotonic()
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            break
        time.sleep(0.2)
        if time.monotonic() - start > seconds:
            break
    return time.monotonic() - start


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _healthy(url: str) -> None:
    assert httpx.get(f"http://{url}/v2/health/ready", timeout=5).status_code == 200


def test_headers_sent_slowly_get_408(server: str) -> None:
    request = b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
    with _connect(server) as sock:
        elapsed = _trickle(sock, request, 8.0)
        answer = _read_all(sock)
    assert elapsed < 6.0, f"the server kept a slow client for {elapsed:.1f} s"
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] == "request_timeout"
    _healthy(server)


def test_a_body_sent_slowly_gets_408(server: str) -> None:
    body = json.dumps({"instances": [[0.0] * 30]}).encode()
    head = (b"POST /v1/models/breast-cancer:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    with _connect(server) as sock:
        sock.sendall(head)
        elapsed = _trickle(sock, body, 8.0)
        answer = _read_all(sock)
    assert elapsed < 6.0, f"the server kept a slow body for {elapsed:.1f} s"
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    _healthy(server)


def test_connections_per_client_address_are_bounded(server: str) -> None:
    held = [_connect(server) for _ in range(4)]
    try:
        for sock in held:
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")  # each holds a kept-alive connection
        with _connect(server) as extra:
            extra.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_all(extra) == b""  # closed without an answer
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    _healthy(server)  # the address may connect again once its connections closed
