"""One caller's bad row does not fail another caller's request merged into the same dynamic batch.

A real app over a real python-runtime text model with dynamic batching (two rows per batch, a long queue
delay, so two concurrent requests share one runtime call). One caller sends bytes that are not UTF-8 (through
the binary tensor extension, the only way to send them), the other a valid text; both over real HTTP (ASGI).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from mlgate.codecs.binary import HEADER
from tests.fakes import write_python_model

pytestmark = pytest.mark.anyio

TEXT_MODEL = '''
import numpy as np

class Model:
    def load(self):
        pass

    def predict(self, batch, parameters):
        # Strict decoding, as a text model's tokenizer does: invalid UTF-8 raises.
        return {"length": np.array([len(t.decode("utf-8")) for t in batch["text"]], dtype=np.int64)}
'''


def text_model(root: Path) -> Path:
    return write_python_model(
        root, "chars", TEXT_MODEL, '[[inputs]]\nname = "text"\ndatatype = "BYTES"\nshape = [-1]\n',
        '[[outputs]]\nname = "length"\ndatatype = "INT64"\nshape = [-1]\n',
        extra="[batching]\nmax_batch_size = 2\nmax_queue_delay_ms = 2000\n")


def binary_request(value: bytes) -> tuple[bytes, dict[str, str]]:
    raw = struct.pack("<I", len(value)) + value
    head = json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": len(raw)}}]}).encode()
    return head + raw, {HEADER: str(len(head)), "content-type": "application/octet-stream"}


async def test_a_bad_row_fails_only_its_own_request(app_client: Callable[..., Any], tmp_path: Path) -> None:
    text_model(tmp_path / "repo")
    async with app_client(tmp_path / "repo") as client:
        answers: dict[str, httpx.Response] = {}

        async def send(who: str, value: bytes) -> None:
            content, headers = binary_request(value)
            answers[who] = await client.post("/v2/models/chars/infer", content=content, headers=headers)

        async with anyio.create_task_group() as group:
            group.start_soon(send, "good", "héllo".encode())
            group.start_soon(send, "bad", b"\xff\xfe not utf-8")
        good = answers["good"]
        assert good.status_code == 200, good.text
        assert good.json()["outputs"][0]["data"] == [5]
        assert answers["bad"].status_code >= 400 and answers["bad"].json()["code"], answers["bad"].text
        metrics = (await client.get("/metrics")).text
        # The two requests did share a runtime call (a batch of 2 rows), then ran apart.
        two_row = [line for line in metrics.splitlines()
                   if line.startswith('mlgate_batch_size_bucket{le="2.0",model="chars"')]
        one_row = [line for line in metrics.splitlines()
                   if line.startswith('mlgate_batch_size_bucket{le="1.0",model="chars"')]
        assert two_row and one_row, metrics
        assert float(two_row[0].split()[-1]) - float(one_row[0].split()[-1]) >= 1, (two_row, one_row)
