"""PostgreSQL's LISTEN/NOTIFY (mlgate.db.notify) on a real server: a job's changes reach a listener in another
connection at once, only once committed, and a JobService that listens polls its event streams less."""

from __future__ import annotations

import asyncio

import pytest

from mlgate.db.base import utcnow
from mlgate.db.engine import Database
from mlgate.db.notify import listen
from mlgate.db.queries.jobs import JOBS_CHANNEL, JobStore
from mlgate.db.tables.jobs import JobRecord

pytestmark = pytest.mark.anyio


async def test_a_jobs_changes_reach_a_listener_at_once(postgres_url: str) -> None:
    database = Database(postgres_url)
    heard: list[str] = []
    states: list[bool] = []
    listener = asyncio.create_task(listen(database, JOBS_CHANNEL, heard.append, on_state=states.append))
    try:
        async with asyncio.timeout(10):
            while not states or not states[-1]:
                await asyncio.sleep(0.02)
        store = JobStore(database)
        job = JobRecord(id="a" * 32, owner="user:1", actor="user:ann", model="sum", version=None, protocol="v2",
                        status="queued", request={"inputs": []}, attempts=0, created_at=utcnow())
        await store.create(job)
        claimed = await store.claim(job.id, "runner-1", lease_s=30)
        assert claimed is not None
        await store.progress(claimed, 0.5)
        assert await store.claim(job.id, "runner-2", lease_s=30) is None  # nothing changed: nothing sent
        await store.finish(claimed, result={"outputs": []}, ttl_s=60)
        async with asyncio.timeout(5):
            while len(heard) < 3:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert heard == [job.id] * 3  # claimed, progress, finished
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await database.dispose()
    assert states[0] is True and states[-1] is False  # listening, then closed
