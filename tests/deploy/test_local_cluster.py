"""The local cluster of deploy/local/cluster.py under steady load: HAProxy, three `mlgate serve` replicas, two
`mlgate worker`s, the real PostgreSQL (behind a TCP proxy the test can cut), Redis and RabbitMQ.

One scenario, in order, while four clients send a steady, bounded stream of V2 requests through HAProxy
(loopback only; at most ~60 requests/s and 20,000 in all):

1. rolling restart of every replica (SIGTERM, drain, start, back in rotation): 0 failed requests;
2. promote and roll back through the balancer: 0 failed, no answer from a version that was not live;
3. SIGKILL of one replica while six 2-second requests are in flight across the replicas: only requests in
   flight at the kill may fail (none sent after it); detection and recovery times;
4. the database connection cut for 3 s: serving goes on, every prediction-log record of that time is written
   once the database is back, and the catalog follower reconnects (a promote reaches every replica);
then, without load: jobs submitted through HAProxy, one worker SIGKILLed while it runs some: every job
succeeds, with its own answer, recorded once; a key revoked on one replica is refused on all three within
1 s, and a rate limit is counted once across the replicas. The measured numbers are printed (and written to
``$MLGATE_CLUSTER_REPORT`` when set): docs/deployment.md holds those of a run.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from mlgate.model.archives import pack_to_bytes
from tests.fakes import sum_model, write_python_model
from tests.jobs_helpers import rabbitmq_queue  # noqa: F401 - fixture
from tests.registry_helpers import API, ZEROS, versioned_model
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 4
PAUSE_S = 0.05  # between two requests of one client
MAX_REQUESTS = 20_000
RATE_LIMIT = 20
JOBS = 40  # each naps JOB_NAP_S on a worker; 2 workers x 4 at a time
JOB_NAP_S = 0.5
JOB_LEASE_S = 3.0  # a dead worker's jobs are taken over once their lease ran out
NAP_MODEL = """
import time

class Model:
    def predict(self, batch, parameters):
        time.sleep(float(parameters.get("sleep_s", 0)))
        return {"y": batch["x"] * 2}
"""


def _load_cluster_module() -> Any:
    spec = importlib.util.spec_from_file_location("mlgate_local_cluster", ROOT / "deploy" / "local" / "cluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Outcome:
    phase: str
    started: float
    ended: float
    result: str  # the HTTP status, or the name of the transport error
    version: str | None


class Load:
    """``CLIENTS`` keep-alive clients sending V2 requests of zeros to ``url`` until stopped (bounded)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.phase = "steady"
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=70)

    def _client(self, index: int) -> None:
        with httpx.Client(base_url=self.url, timeout=65) as client:
            for n in range(MAX_REQUESTS // CLIENTS):
                if self._stop.is_set():
                    return
                phase = self.phase
                started = time.monotonic()
                version = None
                try:
                    response = client.post("/v2/models/sum/infer", json=ZEROS,
                                           headers={"X-Request-ID": f"{phase}-{index}-{n}"})
                    result = str(response.status_code)
                    if response.status_code == 200:
                        version = str(response.json()["model_version"])
                except httpx.TransportError as exc:
                    result = type(exc).__name__
                with self._lock:
                    self.outcomes.append(Outcome(phase, started, time.monotonic(), result, version))
                time.sleep(PAUSE_S)

    def long_requests(self, count: int, sleep_s: float) -> list[threading.Thread]:
        """``count`` requests to the model "nap" that each take ``sleep_s`` (in flight across the replicas)."""

        def one() -> None:
            started = time.monotonic()
            body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}],
                    "parameters": {"sleep_s": sleep_s}}
            try:
                result = str(httpx.post(f"{self.url}/v2/models/nap/infer", json=body, timeout=65).status_code)
            except httpx.TransportError as exc:
                result = type(exc).__name__
            with self._lock:
                self.outcomes.append(Outcome(self.phase, started, time.monotonic(), result, None))

        threads = [threading.Thread(target=one, daemon=True) for _ in range(count)]
        for thread in threads:
            thread.start()
        return threads

    def of(self, phase: str) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.phase == phase]


class LoopThread:
    """An asyncio loop on a thread, for the TCP proxy in front of PostgreSQL."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, f"{what}: not within {timeout_s} s"
        time.sleep(0.02)
    return time.monotonic() - started


def _answer(url: str) -> str | None:
    try:
        response = httpx.post(f"{url}/v2/models/sum/infer", json=ZEROS, timeout=5)
    except httpx.TransportError:
        return None
    return str(response.json()["model_version"]) if response.status_code == 200 else None


def _failed(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.result != "200"]


def _nap_job(x: int) -> dict[str, Any]:
    return {"model": "nap", "request": {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [x]}],
                                        "parameters": {"sleep_s": JOB_NAP_S}}}


def _jobs_ended(log_paths: list[Path]) -> Counter[str]:
    """Job id -> how many times a worker recorded its end (``job ended``, recorded: the conditional update won)."""
    ended: Counter[str] = Counter()
    for path in log_paths:
        for line in path.read_text().splitlines():
            if '"job ended"' in line:
                entry = json.loads(line)
                if entry.get("recorded"):
                    ended[entry["job"]] += 1
    return ended


def test_local_cluster_under_load(tmp_path: Path, postgres_url: str, redis_url: str,
                                  rabbitmq_queue: tuple[str, str]) -> None:  # noqa: F811 - the fixture
    local = _load_cluster_module()
    broker, queue = rabbitmq_queue
    repo = tmp_path / "repo"  # the folder model "limited" (a sum model): only the rate-limit step uses it
    shutil.copytree(sum_model(tmp_path / "build"), repo / "limited")
    toml = repo / "limited" / "model.toml"
    toml.write_text(toml.read_text().replace('name = "sum"', 'name = "limited"'))
    write_python_model(repo, "nap", NAP_MODEL, '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n',
                       '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n')

    loop = LoopThread()
    pg = urlsplit(postgres_url)
    proxy = TcpProxy(pg.hostname or "127.0.0.1", pg.port or 5432)
    loop.run(proxy.start())
    through_proxy = postgres_url.replace(f"{pg.hostname}:{pg.port}", f"127.0.0.1:{proxy.port}")
    cluster = local.LocalCluster(
        tmp_path / "cluster", database_url=through_proxy, redis_url=redis_url, model_repository=repo,
        broker_url=broker,
        extra_env={"MLGATE_JOBS_QUEUE": queue, "MLGATE_JOBS_LEASE_S": str(JOB_LEASE_S),
                   "MLGATE_ANONYMOUS_MODELS": '["*"]',
                   "MLGATE_RATE_LIMIT_TIERS": '{"anonymous": {"requests": "", "rows": ""}}',
                   "MLGATE_RATE_LIMIT_MODELS": json.dumps(
                       {"limited": {"anonymous": {"requests": f"{RATE_LIMIT}/minute"}}}),
                   "MLGATE_AUTH_CACHE_TTL_S": "60"})  # a long TTL: only the change feed can revoke in time
    report: dict[str, Any] = {}
    try:
        started = time.monotonic()
        cluster.start()
        report["cluster start (migrate, 3 replicas, 2 workers, HAProxy) s"] = round(time.monotonic() - started, 1)
        lb = cluster.url
        signed_in = httpx.post(f"{lb}/api/v1/auth/token", timeout=10,
                               data={"username": local.ADMIN_USERNAME, "password": local.ADMIN_PASSWORD})
        admin = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
        for v in (1, 2, 3):
            pushed = httpx.post(f"{lb}{API}/models/sum/versions", headers=admin, timeout=30,
                                files={"file": ("m.tar.gz", io.BytesIO(pack_to_bytes(versioned_model(tmp_path, v))))})
            assert pushed.status_code == 201, pushed.text
            if v == 1:
                assert httpx.post(f"{lb}{API}/models/sum/promote", json={"version": "1"}, headers=admin,
                                  timeout=30).status_code == 200
        for replica in cluster.replicas:
            _wait(lambda r=replica: _answer(r.url) == "1", 10, f"{replica.name} answers version 1")

        with Load(lb) as load:
            time.sleep(1)
            # 1. rolling restart
            load.phase = "rolling"
            restarts = []
            for replica in cluster.replicas:
                began = time.monotonic()
                cluster.stop_replica(replica)
                cluster.start_replica(replica)
                cluster.wait_state(replica, "UP")
                restarts.append(time.monotonic() - began)
            report["rolling restart: requests"] = len(load.of("rolling"))
            report["rolling restart: failed"] = len(_failed(load.of("rolling")))
            report["rolling restart: s per replica (drain, start, back in rotation)"] = round(max(restarts), 1)

            # 2. promote and roll back during the load
            load.phase = "promote"
            time.sleep(0.5)
            assert httpx.post(f"{lb}{API}/models/sum/promote", json={"version": "2"}, headers=admin,
                              timeout=30).status_code == 200
            promoted_at = time.monotonic()
            time.sleep(1.5)
            rollback_started = time.monotonic()
            assert httpx.post(f"{lb}{API}/models/sum/rollback", headers=admin, timeout=30).status_code == 200
            rolled_back_at = time.monotonic()
            time.sleep(1.5)
            promote = load.of("promote")
            report["promote + rollback: requests"] = len(promote)
            report["promote + rollback: failed"] = len(_failed(promote))
            versions = Counter(o.version for o in promote)
            report["promote + rollback: answers by version"] = dict(sorted(versions.items()))
            late_v1 = [o for o in promote if o.started > promoted_at + 1.0 and o.ended < rollback_started]
            late_v2 = [o for o in promote if o.started > rolled_back_at + 1.0]
            report["promote + rollback: stale answers (> 1 s after the change)"] = (
                sum(o.version != "2" for o in late_v1) + sum(o.version != "1" for o in late_v2))

            # 3. SIGKILL of one replica
            load.phase = "kill"
            time.sleep(0.5)
            victim = cluster.replicas[1]
            longs = load.long_requests(6, 2.0)  # about two of them on the victim when it dies
            time.sleep(0.7)
            killed_at = time.monotonic()
            assert victim.proc is not None
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(timeout=10)
            report["SIGKILL: HAProxy marks it DOWN after s"] = round(cluster.wait_state(victim, "DOWN", 10), 2)
            down_at = time.monotonic()
            cluster.start_replica(victim)
            cluster.wait_state(victim, "UP")
            report["SIGKILL: back in rotation after s (restart included)"] = round(time.monotonic() - killed_at, 1)
            for thread in longs:
                thread.join(timeout=30)
            kill = load.of("kill")
            report["SIGKILL: requests"] = len(kill)
            report["SIGKILL: requests in flight (all replicas) at the kill"] = sum(
                o.started <= killed_at <= o.ended for o in kill)
            report["SIGKILL: requests sent before HAProxy marked it DOWN"] = sum(
                killed_at < o.started < down_at for o in kill)
            report["SIGKILL: failed"] = len(_failed(kill))
            report["SIGKILL: failed, by answer"] = dict(Counter(o.result for o in _failed(kill)))
            report["SIGKILL: failed, sent at s after the kill"] = [round(o.started - killed_at, 2)
                                                                   for o in _failed(kill)]
            report["SIGKILL: failed, sent after the kill"] = len([o for o in _failed(kill) if o.started > killed_at])

            # 4. the database connection cut for 3 s
            load.phase = "dbcut"
            time.sleep(0.5)
            loop.run(proxy.cut())
            time.sleep(3.0)
            loop.run(proxy.restore())
            time.sleep(1.0)
            load.phase = "after"
            dbcut = load.of("dbcut")
            report["database cut 3 s: requests"] = len(dbcut)
            report["database cut 3 s: failed"] = len(_failed(dbcut))
        outcomes = load.outcomes

        # The prediction log of the outage: every answered request of that time is in the database.
        dbcut_ok = sum(1 for o in outcomes if o.phase == "dbcut" and o.result == "200")

        async def logged() -> int:
            connection = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
            try:
                return int(await connection.fetchval(
                    "SELECT count(*) FROM prediction_log WHERE request_id LIKE 'dbcut-%' AND status = 200"))
            finally:
                await connection.close()

        waited = _wait(lambda: asyncio.run(logged()) >= dbcut_ok, 15, "prediction log written after the outage")
        report["database cut 3 s: prediction-log records written / answered"] = f"{asyncio.run(logged())}/{dbcut_ok}"
        report["database cut 3 s: log caught up after s"] = round(waited, 1)
        # The change follower reconnected: a promote made now reaches every replica.
        assert httpx.post(f"{lb}{API}/models/sum/promote", json={"version": "2"}, headers=admin,
                          timeout=30).status_code == 200
        reached = max(_wait(lambda r=r: _answer(r.url) == "2", 5, f"{r.name} follows after the outage")
                      for r in cluster.replicas)
        report["database cut 3 s: promote after it reaches every replica in s"] = round(reached, 2)

        # Jobs through HAProxy; one worker SIGKILLed while it runs some: all succeed, each recorded once.
        async def jobs_of(ids: list[str]) -> list[asyncpg.Record]:
            connection = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
            try:
                return list(await connection.fetch(
                    "SELECT id, status, runner, attempts, result FROM jobs WHERE id = ANY($1::text[])", ids))
            finally:
                await connection.close()

        job_ids = []
        for i in range(JOBS):
            submitted = httpx.post(f"{lb}/api/v1/jobs", json=_nap_job(i), headers=admin, timeout=10)
            assert submitted.status_code == 202, submitted.text
            job_ids.append(submitted.json()["id"])
        dead = cluster.workers[0]
        assert dead.proc is not None
        running_on_dead = f":{dead.proc.pid}:"
        _wait(lambda: any(r["status"] == "running" and running_on_dead in (r["runner"] or "")
                          for r in asyncio.run(jobs_of(job_ids))), 30, "a job running on worker w1")
        dead.proc.send_signal(signal.SIGKILL)
        dead.proc.wait(timeout=10)
        worker_killed_at = time.monotonic()
        held = [r["id"] for r in asyncio.run(jobs_of(job_ids))
                if r["status"] == "running" and running_on_dead in (r["runner"] or "")]
        ended_at = worker_killed_at + _wait(
            lambda: all(r["status"] in ("succeeded", "failed", "cancelled") for r in asyncio.run(jobs_of(job_ids))),
            90, "every job ended")
        jobs = {r["id"]: r for r in asyncio.run(jobs_of(job_ids))}
        ended = _jobs_ended([w.log_path for w in cluster.workers])
        report["jobs: submitted through HAProxy"] = JOBS
        report["jobs: running on the SIGKILLed worker"] = len(held)
        report["jobs: succeeded with their own answer"] = sum(
            jobs[job_id]["status"] == "succeeded"
            and json.loads(jobs[job_id]["result"])["outputs"][0]["data"] == [2.0 * i]
            for i, job_id in enumerate(job_ids))
        report["jobs: taken over by the other worker"] = sum(
            jobs[job_id]["attempts"] >= 2 and running_on_dead not in (jobs[job_id]["runner"] or "")
            for job_id in held)
        report["jobs: results recorded more than once"] = sum(ended[job_id] > 1 for job_id in job_ids)
        report["jobs: results recorded, in all"] = sum(ended[job_id] for job_id in job_ids)
        report["jobs: all ended s after the kill"] = round(ended_at - worker_killed_at, 1)

        # A key revoked on one replica is refused on all three within 1 s.
        made = httpx.post(f"{cluster.replicas[0].url}/api/v1/keys", json={"name": "revoked"}, headers=admin,
                          timeout=10)
        assert made.status_code == 201, made.text
        key = made.json()["key"]
        bearer = {"Authorization": f"Bearer {key}"}
        for replica in cluster.replicas:  # cached on every replica now
            for _ in range(2):
                assert httpx.get(f"{replica.url}/api/v1/auth/me", headers=bearer, timeout=5).status_code == 200
        revoked = httpx.delete(f"{cluster.replicas[1].url}/api/v1/keys/{key[:16]}", headers=admin, timeout=10)
        assert revoked.status_code in (200, 204), revoked.text
        refused = [_wait(lambda r=r: httpx.get(f"{r.url}/api/v1/auth/me", headers=bearer, timeout=5).status_code
                         == 401, 5, f"{r.name} refuses the revoked key") for r in cluster.replicas]
        report["key revoked on r2: refused on all 3 replicas within s"] = round(max(refused), 2)

        # A rate limit is counted once across the replicas (Redis): 30 requests over 3 replicas, 20 pass.
        statuses = Counter(
            httpx.post(f"{cluster.replicas[i % 3].url}/v2/models/limited/infer", json=ZEROS,
                       timeout=10).status_code for i in range(RATE_LIMIT + 10))
        report[f"rate limit {RATE_LIMIT}/minute, 30 requests over 3 replicas: 200 / 429"] = (
            f"{statuses[200]} / {statuses[429]}")
    finally:
        cluster.stop()
        loop.run(proxy.cut())
        loop.close()
    text = json.dumps(report, indent=1)
    print(text)
    if os.environ.get("MLGATE_CLUSTER_REPORT"):
        Path(os.environ["MLGATE_CLUSTER_REPORT"]).write_text(text)

    assert report["rolling restart: failed"] == 0, _failed([o for o in outcomes if o.phase == "rolling"])
    assert report["rolling restart: requests"] > 100
    assert report["promote + rollback: failed"] == 0
    assert set(report["promote + rollback: answers by version"]) <= {"1", "2"}  # never 3, never pushed live
    assert report["promote + rollback: stale answers (> 1 s after the change)"] == 0
    # Only what was in flight at the kill may fail: a request sent after it, even before HAProxy saw the
    # replica down, is retried on another replica (retry-on conn-failure empty-response).
    assert report["SIGKILL: failed"] <= report["SIGKILL: requests in flight (all replicas) at the kill"]
    assert report["SIGKILL: failed, sent after the kill"] == 0, report["SIGKILL: failed, sent at s after the kill"]
    assert held, "worker w1 ran no job when it was killed"
    assert report["jobs: succeeded with their own answer"] == JOBS
    assert report["jobs: taken over by the other worker"] == len(held)
    assert report["jobs: results recorded more than once"] == 0
    assert report["jobs: results recorded, in all"] == JOBS
    assert report["database cut 3 s: failed"] == 0
    assert report["key revoked on r2: refused on all 3 replicas within s"] < 1.0
    assert statuses == {200: RATE_LIMIT, 429: 10}, statuses
