"""Rollouts without downtime: push, promote and roll back while clients send requests without pause.

Every request must succeed, and the version that answered (``model_version``, and the value only that
version computes) must have been the production version at some moment while the request was open.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.registry_helpers import API, ZEROS, promote, push, versioned_model

pytestmark = pytest.mark.anyio

CLIENTS = 4


async def test_promote_and_rollback_under_continuous_traffic(
    app_client: Callable[..., Any], tmp_path: Path, database_url: str
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    # (start, end, version) of each production period; during a move both ends are live.
    periods: list[tuple[float, float, str]] = []
    results: list[tuple[float, float, int, str | None, float | None]] = []
    async with app_client(repo, database_url=database_url, drain_timeout_s=10) as client:
        for v in (1, 2):
            assert (await push(client, "sum", versioned_model(tmp_path, v))).status_code == 201
        assert (await promote(client, "sum", "1")).status_code == 200
        v3 = versioned_model(tmp_path, 3)
        live_since, live = time.monotonic(), "1"
        stop = anyio.Event()

        async def traffic() -> None:
            while not stop.is_set():
                started = time.monotonic()
                response = await client.post("/v2/models/sum/infer", json=ZEROS)
                ended = time.monotonic()
                if response.status_code == 200:
                    body = response.json()
                    results.append((started, ended, 200, body["model_version"], body["outputs"][0]["data"][0]))
                else:
                    results.append((started, ended, response.status_code, None, None))

        async def move(call: Any, to: str) -> None:
            nonlocal live_since, live
            before = time.monotonic()
            response = await call
            assert response.status_code == 200, response.text
            after = time.monotonic()
            periods.append((live_since, after, live))  # the old version is live until the move returns
            live_since, live = before, to  # the new one may answer from the moment the move starts

        async def more_traffic(n: int = 10) -> None:
            """Wait until ``n`` more requests were answered (at most 20 s): every phase is under traffic."""
            target = len(results) + n
            with anyio.fail_after(20):
                while len(results) < target:
                    await anyio.sleep(0.01)

        async with anyio.create_task_group() as tg:
            for _ in range(CLIENTS):
                tg.start_soon(traffic)
            await more_traffic()
            assert (await push(client, "sum", v3)).status_code == 201  # a push moves no traffic
            await more_traffic()
            await move(promote(client, "sum", "2"), "2")
            await more_traffic()
            await move(promote(client, "sum", "3"), "3")
            await more_traffic()
            await move(client.post(f"{API}/models/sum/rollback"), "2")
            await more_traffic()
            await move(client.post(f"{API}/models/sum/rollback"), "1")
            await more_traffic()
            stop.set()
        periods.append((live_since, time.monotonic() + 1, live))

    failed = [r for r in results if r[2] != 200]
    assert not failed, f"{len(failed)} of {len(results)} requests failed: {failed[:5]}"
    assert len(results) > 50
    for started, ended, _, version, value in results:
        assert value == float(version or "nan"), "the answer was not computed by the version named"
        live_then = {v for (a, b, v) in periods if a <= ended and b >= started}
        assert version in live_then, f"version {version} answered in [{started}, {ended}] but live: {live_then}"
    assert {r[3] for r in results} == {"1", "2", "3"}


SLOW_MODEL = '''
import threading
from pathlib import Path

import numpy as np

GATE = threading.Event()


class Model:
    def load(self):
        self.offset = float((Path(__file__).parent / "offset.txt").read_text())

    def predict(self, batch, parameters):
        if parameters.get("wait"):
            GATE.wait(10)
        if parameters.get("release"):
            GATE.set()
        return {"sum": batch["x"].sum(axis=1) + self.offset}
'''


async def test_old_version_is_unloaded_only_after_its_requests_finish(
    app_client: Callable[..., Any], tmp_path: Path, sqlite_url: str
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    slow = versioned_model(tmp_path, 1)
    (slow / "model.py").write_text(SLOW_MODEL)
    async with app_client(repo, database_url=sqlite_url, drain_timeout_s=30) as client:
        registry = client._transport.app.state.mlgate.dataplane.registry  # type: ignore[attr-defined]
        await push(client, "sum", slow)
        await push(client, "sum", versioned_model(tmp_path, 2))
        await promote(client, "sum", "1")
        old = registry.get("sum")
        results: list[Any] = []

        async def held() -> None:
            body = {**ZEROS, "parameters": {"wait": True}}
            results.append(await client.post("/v2/models/sum/infer", json=body))

        async with anyio.create_task_group() as tg:
            tg.start_soon(held)
            with anyio.fail_after(5):
                while old.in_flight == 0:
                    await anyio.sleep(0.01)
            assert (await promote(client, "sum", "2")).status_code == 200
            assert registry.get("sum").version == "2"  # new requests go to version 2 at once
            with anyio.fail_after(5):  # the rollout is now waiting for version 1 to drain (ModelHandle.drain)
                while old._idle is None:
                    await anyio.sleep(0.01)
            assert old.state.value == "READY" and old.in_flight > 0  # still serving its request
            # Let the held request finish (its model's gate is opened by a request to version 1 itself).
            old_executor = old.executor
            assert old_executor is not None
            await old_executor({"x": __import__("numpy").zeros((1, 3), "float32")}, {"release": True})
        assert results[0].status_code == 200 and results[0].json()["model_version"] == "1"
        with anyio.fail_after(5):
            while old.state.value != "UNLOADED":
                await anyio.sleep(0.01)
