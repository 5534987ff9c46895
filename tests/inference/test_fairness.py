"""Jobs and synchronous calls share a model's instances fairly: however many jobs are queued, a synchronous
call waits for at most one job batch per instance, and jobs keep progressing under synchronous load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlgate.inference.batching import DynamicBatcher
from mlgate.runtimes.base import PROGRESS_PARAMETER, Batch
from tests.jobs_helpers import JOBS, jobs_repo, sleepy_body, wait_for
from tests.secure import SecureApp, bearer, secure_app

pytestmark = pytest.mark.anyio


class Recorder:
    """An executor that runs one call at a time, each held until ``release`` lets it end; keeps the order."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.release = asyncio.Semaphore(0)

    async def __call__(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        self.order.append(str(parameters["who"]))
        await self.release.acquire()
        return {"y": batch["x"] * 2}

    async def close(self) -> None:
        pass


async def test_queued_jobs_and_synchronous_calls_take_turns() -> None:
    inner = Recorder()
    batcher = DynamicBatcher(inner, concurrency=1)
    x = {"x": np.ones(1, dtype=np.float32)}

    def job(i: int) -> dict[str, Any]:
        return {"who": f"job{i}", PROGRESS_PARAMETER: lambda value: None}

    calls = [asyncio.create_task(batcher(x, job(i))) for i in range(6)]
    await asyncio.sleep(0.05)  # job0 runs, job1..5 wait
    calls += [asyncio.create_task(batcher(x, {"who": f"sync{i}"})) for i in range(2)]
    await asyncio.sleep(0.05)
    for _ in calls:
        inner.release.release()
        await asyncio.sleep(0.01)
    await asyncio.gather(*calls)
    assert inner.order == ["job0", "sync0", "job1", "sync1", "job2", "job3", "job4", "job5"]
    await batcher.close()


@pytest.fixture
async def sec(tmp_path: Path) -> AsyncIterator[SecureApp]:
    async with secure_app(jobs_repo(tmp_path / "models"), data_dir=tmp_path / "data", jobs_concurrency=8) as app:
        await app.user("ann")
        yield app


async def test_a_synchronous_call_answers_within_one_job_while_many_jobs_are_queued(sec: SecureApp) -> None:
    ann = bearer(await sec.key("ann"))
    job_s = 0.6
    ids = [(await sec.client.post(JOBS, json={"model": "sleepy", "request": sleepy_body(job_s, i)},
                                  headers=ann)).json()["id"] for i in range(8)]
    await wait_for(sec.client, ids[0], {"running"}, ann)
    await asyncio.sleep(0.1)  # all 8 are in the model's queue: 1 running, 7 waiting (4.2 s of work)
    started = time.perf_counter()
    sync = await sec.client.post("/v2/models/sleepy/infer", json=sleepy_body(0, 5.0), headers=ann)
    waited = time.perf_counter() - started
    assert sync.status_code == 200 and sync.json()["outputs"][0]["data"] == [10.0]
    assert waited < 2 * job_s, f"the synchronous call waited {waited:.2f} s behind queued jobs"
    for job_id in ids:
        await wait_for(sec.client, job_id, {"succeeded"}, ann, timeout_s=30)
