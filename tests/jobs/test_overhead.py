"""What one job costs the embedded default's database: the statements on the jobs table from submission to
the result read over Server-Sent Events. The event stream is handed the changes of the server's own runner
(no polling), the count of the caller's jobs and the insert share a transaction, claim and finish return
their row; ``benchmarks/jobs.py overhead`` measures the time this saves."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from httpx_sse import aconnect_sse
from sqlalchemy import event

from tests.jobs_helpers import JOBS, jobs_repo, sum_body
from tests.secure import SecureApp, bearer, secure_app

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sec(tmp_path: Path) -> AsyncIterator[SecureApp]:
    async with secure_app(jobs_repo(tmp_path / "models"), data_dir=tmp_path / "data") as app:
        await app.user("ann")
        yield app


async def _follow(sec: SecureApp, headers: dict[str, str]) -> list[str]:
    """Submit a job and follow its events until it ends; the statuses seen."""
    submitted = await sec.client.post(JOBS, json={"model": "sum", "request": sum_body()}, headers=headers)
    assert submitted.status_code == 202, submitted.text
    seen = []
    async with aconnect_sse(sec.client, "GET", f"{submitted.headers['location']}/events", headers=headers) as sse:
        async for message in sse.aiter_sse():
            if message.event == "status":
                seen.append(message.json()["status"])
                if seen[-1] in ("succeeded", "failed"):
                    break
    return seen


async def test_a_job_costs_three_writes_and_few_reads_and_its_end_reaches_the_stream_at_once(
        sec: SecureApp) -> None:
    ann = bearer(await sec.key("ann"))
    await _follow(sec, ann)  # warm-up: the model's first call, the key's first lookup
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if " jobs" in statement:
            statements.append(statement.split(None, 1)[0].upper())

    engine = sec.app.state.mlgate.jobs.store.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        started = time.perf_counter()
        seen = await _follow(sec, ann)
        elapsed = time.perf_counter() - started
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert seen[-1] == "succeeded", seen
    writes = [s for s in statements if s in ("INSERT", "UPDATE", "DELETE")]
    assert writes == ["INSERT", "UPDATE", "UPDATE"], statements  # queued, claimed, finished
    # Reads: the caller's count, the 202's place in the queue, the stream's first look and its look once
    # watching; no polling (12 statements before the stream was handed the runner's changes).
    assert len(statements) <= 7, statements
    # The stream is told of the end: no wait for its 0.2 s database poll (the model takes 1 ms).
    assert elapsed < 0.2, elapsed


async def test_the_final_event_shows_progress_as_a_number_with_a_fraction(sec: SecureApp) -> None:
    # The final status comes from the runner's UPDATE ... RETURNING, which on SQLite gives 1.0 back as the
    # integer 1: clients printing it saw "1", and the docs print 1.0.
    ann = bearer(await sec.key("ann"))
    submitted = await sec.client.post(JOBS, json={"model": "sum", "request": sum_body()}, headers=ann)
    final = None
    async with aconnect_sse(sec.client, "GET", f"{submitted.headers['location']}/events", headers=ann) as sse:
        async for message in sse.aiter_sse():
            if message.event == "status" and message.json()["status"] == "succeeded":
                final = message.data
                break
    assert final is not None and '"progress":1.0' in final.replace(" ", ""), final
