"""Admission control over real HTTP: with requests queued, a request whose deadline the estimated wait (queue
ahead times the measured service time per batch) cannot meet gets 503 at once with a computed Retry-After,
the estimate is in /metrics, and requests whose deadline it meets still queue and succeed. Jobs wait."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ClientFactory
from tests.jobs_helpers import sleepy_body, sleepy_model

pytestmark = pytest.mark.anyio


async def test_a_request_that_cannot_meet_its_deadline_is_refused_at_once(tmp_path: Path,
                                                                          app_client: ClientFactory) -> None:
    sleepy_model(tmp_path / "models")
    async with app_client(tmp_path / "models") as client:
        assert (await client.post("/v2/models/sleepy/infer", json=sleepy_body(0.3))).status_code == 200  # measured
        queued = [asyncio.create_task(client.post("/v2/models/sleepy/infer", json=sleepy_body(0.3)))
                  for _ in range(5)]
        await asyncio.sleep(0.1)  # one computing, four waiting: about 1.5 s ahead plus 0.3 s of its own
        started = time.monotonic()
        refused = await client.post("/v2/models/sleepy/infer", json=sleepy_body(0.3),
                                    headers={"X-Request-Timeout-Ms": "500"})
        assert time.monotonic() - started < 0.25  # at once, not after 500 ms in the queue
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "overloaded"
        assert 1 <= int(refused.headers["retry-after"]) <= 3
        metrics = (await client.get("/metrics")).text
        match = re.search(r'mlgate_estimated_wait_seconds\{model="sleepy",version="1"\} ([0-9.e+-]+)', metrics)
        assert match and 1.0 < float(match.group(1)) < 3.0, metrics[:2000]
        admitted = await client.post("/v2/models/sleepy/infer", json=sleepy_body(0.3))  # 60 s: it fits
        assert admitted.status_code == 200
        assert all(r.status_code == 200 for r in await asyncio.gather(*queued))
        # the queue drained: the same short deadline is admitted again
        again = await client.post("/v2/models/sleepy/infer", json=sleepy_body(0.05),
                                  headers={"X-Request-Timeout-Ms": "500"})
        assert again.status_code == 200


async def test_nothing_is_refused_while_nothing_is_queued(tmp_path: Path, app_client: ClientFactory) -> None:
    sleepy_model(tmp_path / "models")
    async with app_client(tmp_path / "models") as client:
        assert (await client.post("/v2/models/sleepy/infer", json=sleepy_body(0.3))).status_code == 200
        # its own call takes longer than the deadline, but nothing waits ahead: it runs (and gets 504)
        late = await client.post("/v2/models/sleepy/infer", json=sleepy_body(0.3),
                                 headers={"X-Request-Timeout-Ms": "100"})
        assert late.status_code == 504
        assert isinstance(client, httpx.AsyncClient)
