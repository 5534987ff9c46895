"""A response's head and body leave in one write: ``mlgate.edge.connections._CoalescedWrites`` over a transport
that records what reaches it, under a real event loop; and a real server still answers correctly through it."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlgate.edge.connections import _CoalescedWrites
from tests.processes import serve_process


class Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any]] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.calls.append(("write", bytes(data)))

    def writelines(self, data: Any) -> None:
        self.calls.append(("writelines", [bytes(d) for d in data]))

    def close(self) -> None:
        self.calls.append(("close", None))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort", None))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1234) if name == "peername" else default


@pytest.mark.anyio
async def test_writes_of_one_loop_turn_leave_together_in_order() -> None:
    raw = Recording()
    transport = _CoalescedWrites(raw, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert raw.calls == []  # nothing sent until the loop's turn ends
    await asyncio.sleep(0)
    assert raw.calls == [("writelines", [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n", b"{}"])]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert raw.calls[-1] == ("writelines", [b"next"])
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1234)  # the rest is the transport's


@pytest.mark.anyio
async def test_close_sends_what_is_pending_first_and_abort_drops_it() -> None:
    raw = Recording()
    transport = _CoalescedWrites(raw, asyncio.get_running_loop())
    transport.write(b"last answer")
    transport.close()
    assert raw.calls == [("writelines", [b"last answer"]), ("close", None)]
    await asyncio.sleep(0)
    assert len(raw.calls) == 2  # the scheduled flush finds nothing left

    aborted = Recording()
    transport = _CoalescedWrites(aborted, asyncio.get_running_loop())
    transport.write(b"never sent")
    transport.abort()
    await asyncio.sleep(0)
    assert aborted.calls == [("abort", None)]


def test_a_real_server_answers_whole_responses_in_order_through_it(examples_repo: Path, tmp_path: Path) -> None:
    body = json.dumps({"instances": [[0.5] * 30]}).encode()
    request = (b"POST /v1/models/breast-cancer:predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
               b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    with serve_process(examples_repo, tmp_path / "serve.log") as url:
        host, port = url.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(request * 3)  # pipelined: three answers on one connection, in order
            data = b""
            while data.count(b"HTTP/1.1 200 OK") < 3 or not data.endswith(b"]}"):
                chunk = sock.recv(65536)
                assert chunk, data
                data += chunk
        concurrent = [httpx.post(f"http://{url}/v1/models/breast-cancer:predict", content=body,
                                 headers={"content-type": "application/json"}) for _ in range(5)]
    answers = data.split(b"HTTP/1.1 ")[1:]
    assert len(answers) == 3 and all(a.startswith(b"200 OK") and b'"predictions"' in a for a in answers)
    assert all(a.status_code == 200 and len(a.json()["predictions"]) == 1 for a in concurrent)
