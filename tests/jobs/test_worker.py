"""``mlgate worker`` processes on the real RabbitMQ and Redis, sharing a PostgreSQL database with the server.

The exactly-once test, on RabbitMQ and on Redis: 100 jobs across 2 workers, one killed with SIGKILL while it
runs jobs: every job succeeds, once, with its own answer; the jobs the dead worker held were delivered again
and taken over.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from mlgate.auth import Role
from mlgate.db.engine import Database
from mlgate.db.queries.jobs import JobFilter, JobStore
from tests.jobs_helpers import JOBS, jobs_repo, sleepy_body, sum_body, wait_for, worker_process
from tests.registry_helpers import push, versioned_model
from tests.secure import bearer, secure_app

pytestmark = pytest.mark.anyio

LEASE_S = 2.0


def _worker_env(broker: str, queue: str, database_url: str, data_dir: Path) -> dict[str, str]:
    return {"MLGATE_JOBS_BROKER": broker, "MLGATE_JOBS_QUEUE": queue, "MLGATE_DATABASE_URL": database_url,
            "MLGATE_DATA_DIR": str(data_dir), "MLGATE_JOBS_LEASE_S": str(LEASE_S), "MLGATE_JOBS_CONCURRENCY": "4",
            "MLGATE_DRAIN_TIMEOUT_S": "10"}


async def _running_on(store: JobStore, pid: int) -> list[str]:
    """Ids of the jobs running on the worker process ``pid`` (runner names are ``host:pid:random``)."""
    rows, _ = await store.page(JobFilter(status="running"), limit=1000)
    return [job.id for job in rows if job.runner is not None and f":{pid}:" in job.runner]


@pytest.mark.parametrize("kind", ["rabbitmq", "redis"])
async def test_100_jobs_over_2_workers_one_killed_all_succeed_once(
        tmp_path: Path, postgres_url: str, kind: str, request: pytest.FixtureRequest) -> None:
    if kind == "rabbitmq":
        broker, queue = request.getfixturevalue("rabbitmq_queue")
    else:
        broker, queue = request.getfixturevalue("redis_url"), "mlgate-jobs-test"
    repo = jobs_repo(tmp_path / "models")
    data = tmp_path / "data"
    async with secure_app(repo, data_dir=data, database_url=postgres_url, jobs_broker=broker, jobs_queue=queue,
                          jobs_lease_s=LEASE_S) as sec:
        await sec.user("ann")
        ann = bearer(await sec.key("ann"))
        env = _worker_env(broker, queue, postgres_url, data)
        store = JobStore(Database(postgres_url))
        with worker_process(repo, tmp_path / "a.log", env) as a, worker_process(repo, tmp_path / "b.log", env) as b:
            ids = []
            for i in range(100):
                response = await sec.client.post(JOBS, json={"model": "sleepy", "request": sleepy_body(0.3, i)},
                                                 headers=ann)
                assert response.status_code == 202, response.text
                ids.append(response.json()["id"])
            # wait until worker a is running jobs, then kill it mid-job
            deadline = time.monotonic() + 30
            while not await _running_on(store, a.pid):
                assert time.monotonic() < deadline, "worker a never ran a job"
                await asyncio.sleep(0.01)
            os.kill(a.pid, signal.SIGKILL)
            a.wait()
            held = await _running_on(store, a.pid)  # what it held when it died (nothing changes them for a lease)
            assert held
            for job_id in ids:
                await wait_for(sec.client, job_id, {"succeeded", "failed", "cancelled"}, ann, timeout_s=60)
            assert b.poll() is None
        for i, job_id in enumerate(ids):
            job = await store.get(job_id)
            assert job is not None and job.status == "succeeded", (job_id, job and job.error)
            assert job.result is not None and job.result["outputs"][0]["data"] == [2.0 * i]
        for job_id in held:  # delivered again and completed by worker b
            job = await store.get(job_id)
            assert job is not None and job.attempts >= 2 and f":{b.pid}:" in (job.runner or ""), job_id
        await store.database.dispose()


async def test_a_worker_on_redis_runs_jobs_and_sigterm_lets_the_running_job_finish(
        tmp_path: Path, postgres_url: str, redis_url: str) -> None:
    repo = jobs_repo(tmp_path / "models")
    data = tmp_path / "data"
    queue = "mlgate-jobs-test"
    async with secure_app(repo, data_dir=data, database_url=postgres_url, jobs_broker=redis_url, jobs_queue=queue,
                          jobs_lease_s=LEASE_S) as sec:
        await sec.user("ann", Role.USER)
        ann = bearer(await sec.key("ann"))
        env = _worker_env(redis_url, queue, postgres_url, data)
        with worker_process(repo, tmp_path / "w.log", env) as w:
            ids = []
            for i in range(10):
                response = await sec.client.post(JOBS, json={"model": "sleepy", "request": sleepy_body(0.05, i)},
                                                 headers=ann)
                ids.append(response.json()["id"])
            for i, job_id in enumerate(ids):
                await wait_for(sec.client, job_id, {"succeeded"}, ann)
                result = (await sec.client.get(f"{JOBS}/{job_id}/result", headers=ann)).json()
                assert result["outputs"][0]["data"] == [2.0 * i]
            slow = (await sec.client.post(JOBS, json={"model": "sleepy", "request": sleepy_body(1.5, 7)},
                                          headers=ann)).json()["id"]
            await wait_for(sec.client, slow, {"running"}, ann)
            w.send_signal(signal.SIGTERM)
            assert w.wait(timeout=30) == 0, (tmp_path / "w.log").read_text()[-3000:]
            job = await wait_for(sec.client, slow, {"succeeded", "failed", "queued"}, ann)
            assert job["status"] == "succeeded"


async def test_a_worker_with_model_patterns_takes_only_those_models_jobs(
        tmp_path: Path, postgres_url: str, rabbitmq_queue: tuple[str, str]) -> None:
    broker, queue = rabbitmq_queue
    repo = jobs_repo(tmp_path / "models")
    data = tmp_path / "data"
    async with secure_app(repo, data_dir=data, database_url=postgres_url, jobs_broker=broker, jobs_queue=queue,
                          jobs_lease_s=LEASE_S) as sec:
        await sec.user("ann")
        ann = bearer(await sec.key("ann"))
        env = _worker_env(broker, queue, postgres_url, data)
        store = JobStore(Database(postgres_url))
        await sec.user("dee", Role.DEPLOYER)
        deployer = bearer(await sec.key("dee"))  # a registry model that the worker does not take: never loaded there
        pushed = await push(sec.client, "pushed", versioned_model(tmp_path / "registry", 1, name="pushed"),
                            headers=deployer)
        assert pushed.status_code == 201, pushed.text
        with worker_process(repo, tmp_path / "s.log", env, args=["--model", "su?", "--model", "nothing-*"]) as s:
            assert '"models": ["sum"]' in (tmp_path / "s.log").read_text()  # it loaded only what it takes
            slow = (await sec.client.post(JOBS, json={"model": "sleepy", "request": sleepy_body(0, 3)},
                                          headers=ann)).json()["id"]
            fast = (await sec.client.post(JOBS, json={"model": "sum", "request": sum_body()},
                                          headers=ann)).json()["id"]
            await wait_for(sec.client, fast, {"succeeded"}, ann)
            await asyncio.sleep(1.0)  # the sleepy job went round the queue and back: nobody took it
            assert (await store.get(slow)).status == "queued"  # type: ignore[union-attr]
            with worker_process(repo, tmp_path / "z.log", env, args=["-m", "sleep*"]) as z:
                await wait_for(sec.client, slow, {"succeeded"}, ann)
        for job_id, pid in ((fast, s.pid), (slow, z.pid)):
            job = await store.get(job_id)
            assert job is not None and f":{pid}:" in (job.runner or ""), (job_id, job and job.runner)
        await store.database.dispose()
