"""Jobs: overhead per job (embedded default and RabbitMQ) and scale-out over `mlgate worker` processes.

overhead: the server (in-process app, real lifespan, SQLite) and, with RabbitMQ, one real `mlgate worker`;
``--jobs`` jobs on the `sum` python model (microseconds of model time), one at a time: submit, then follow
its Server-Sent Events until it ends. The overhead is submit-to-result latency minus the model's time
(``mlgate_compute_seconds`` average), p50 and p99.

scaleout: a model that sleeps 2 s per call (CPU-free; batches of up to 10 jobs), 200 jobs queued at once,
drained by 1, 2 and 4 `mlgate worker` processes (RabbitMQ, PostgreSQL); throughput in jobs/s, and the ratio
to one worker.

    PYTHONPATH=src python benchmarks/jobs.py overhead [--jobs 200] [--broker amqp://guest:guest@127.0.0.1:5672/]
    PYTHONPATH=src python benchmarks/jobs.py scaleout [--jobs 200] [--workers 1 2 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from mlgate.app import create_app
from mlgate.auth import Actor, Role
from mlgate.settings import Settings

SUM = '''
class Model:
    def predict(self, batch):
        return {"y": batch["x"] * 2}
'''
SLEEP = '''
import time

class Model:
    def predict(self, batch):
        time.sleep(2.0)
        return {"y": batch["x"] * 2}
'''
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"
PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/"


def _model(root: Path, name: str, source: str, extra: str = "") -> None:
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "model.py").write_text(source)
    (directory / "model.toml").write_text(
        f'name = "{name}"\nruntime = "python"\nartifact = "model.py"\ntimeout_ms = 600000\n{extra}\n'
        '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n[[outputs]]\nname = "y"\ndatatype = "FP32"\n'
        'shape = [-1]\n')


def _body(x: float) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [x]}]}


@asynccontextmanager
async def _server(repo: Path, **settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = create_app(Settings(model_repository=repo, prediction_log=False, rate_limit_enabled=False,
                              jobs_max_queued_per_caller=100_000, **settings))
    async with app.router.lifespan_context(app):
        store = app.state.mlgate.security.store
        await store.create_user("bench", "bench password long enough", Role.USER, (), actor=Actor("bench"))
        key, _ = await store.create_key("bench", "bench", actor=Actor("bench"))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mlgate.bench", timeout=None,
                                     headers={"Authorization": f"Bearer {key}"}) as client:
            yield client, app


def _worker(repo: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "mlgate", "worker", "--model-repository", str(repo)],
                            env={**os.environ, "MLGATE_LOG_FORMAT": "json", **env},
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


async def _ready(logs: list[Path], procs: list[subprocess.Popen[bytes]]) -> None:
    for log, proc in zip(logs, procs, strict=True):
        deadline = time.monotonic() + 120
        while b"worker ready" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text()[-2000:])
            await asyncio.sleep(0.1)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _follow(client: httpx.AsyncClient, x: float) -> float:
    started = time.perf_counter()
    submitted = await client.post("/api/v1/jobs", json={"model": "sum", "request": _body(x)})
    assert submitted.status_code == 202, submitted.text
    async with aconnect_sse(client, "GET", f"{submitted.headers['location']}/events") as events:
        async for event in events.aiter_sse():
            if event.event == "status" and event.json()["status"] in ("succeeded", "failed"):
                break
    return time.perf_counter() - started


def _model_ms(app: Any) -> float:
    text = app.state.mlgate.dataplane.metrics.render()[0].decode()
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith('mlgate_compute_seconds_sum{model="sum"'):
            total = float(line.split()[-1])
        if line.startswith('mlgate_compute_seconds_count{model="sum"'):
            count = float(line.split()[-1])
    return 1000 * total / count if count else 0.0


async def overhead(jobs: int, broker: str | None) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="mlgate-bench-jobs-"))
    _model(root / "models", "sum", SUM)
    queue = f"mlgate-bench-{uuid.uuid4().hex[:8]}"
    settings: dict[str, Any] = {"data_dir": root / "data"}
    if broker:
        settings |= {"jobs_broker": broker, "jobs_queue": queue}
    worker = None
    async with _server(root / "models", **settings) as (client, app):
        if broker:
            db = f"sqlite+aiosqlite:///{root / 'data' / 'mlgate.db'}"
            log = root / "worker.log"
            worker = _worker(root / "models", {"MLGATE_JOBS_BROKER": broker, "MLGATE_JOBS_QUEUE": queue,
                                               "MLGATE_DATABASE_URL": db, "MLGATE_DATA_DIR": str(root / "data"),
                                               "MLGATE_PREDICTION_LOG": "false"}, log)
            await _ready([log], [worker])
        try:
            for i in range(10):  # warm-up
                await _follow(client, i)
            latencies = [await _follow(client, i) for i in range(jobs)]
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(30)
        model_ms = _model_ms(app) if not broker else 0.0
    ms = [1000 * s for s in latencies]
    return {"bench": "jobs-overhead", "broker": "rabbitmq" if broker else "embedded", "jobs": jobs,
            "p50_ms": round(_pct(ms, 0.5) - model_ms, 2), "p99_ms": round(_pct(ms, 0.99) - model_ms, 2),
            "model_ms": round(model_ms, 3), "note": "submit-to-result latency minus model time, via SSE"}


async def scaleout(jobs: int, counts: list[int]) -> list[dict[str, Any]]:
    import asyncpg

    results = []
    for workers in counts:
        root = Path(tempfile.mkdtemp(prefix="mlgate-bench-scale-"))
        _model(root / "models", "sleep2", SLEEP, "[batching]\nmax_batch_size = 10\nmax_queue_delay_ms = 50\n")
        name = f"mlgate_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG.replace("+asyncpg", "") + "test")
        await admin.execute(f'CREATE DATABASE "{name}"')
        db = PG + name
        queue = f"mlgate-bench-{uuid.uuid4().hex[:8]}"
        env = {"MLGATE_JOBS_BROKER": RABBITMQ, "MLGATE_JOBS_QUEUE": queue, "MLGATE_DATABASE_URL": db,
               "MLGATE_DATA_DIR": str(root / "data"), "MLGATE_JOBS_CONCURRENCY": "10", "MLGATE_PREDICTION_LOG": "false"}
        try:
            async with _server(root / "models", data_dir=root / "data", database_url=db, jobs_broker=RABBITMQ,
                               jobs_queue=queue) as (client, _app):
                logs = [root / f"w{i}.log" for i in range(workers)]
                procs = [_worker(root / "models", env, log) for log in logs]
                try:
                    await _ready(logs, procs)
                    ids = []
                    started = time.perf_counter()
                    for i in range(jobs):
                        response = await client.post("/api/v1/jobs", json={"model": "sleep2", "request": _body(i)})
                        ids.append(response.json()["id"])
                    store = _app.state.mlgate.jobs.store
                    while True:
                        rows, _ = await store.page(_filter("succeeded"), limit=jobs)
                        if len(rows) >= jobs:
                            break
                        await asyncio.sleep(0.2)
                    elapsed = time.perf_counter() - started
                finally:
                    for proc in procs:
                        proc.terminate()
                    for proc in procs:
                        proc.wait(60)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        results.append({"bench": "jobs-scaleout", "workers": workers, "jobs": jobs, "seconds": round(elapsed, 2),
                        "jobs_per_s": round(jobs / elapsed, 2)})
        print(json.dumps(results[-1]), flush=True)
    base = results[0]["jobs_per_s"]
    for result in results:
        result["vs_one_worker"] = round(result["jobs_per_s"] / base, 2)
    return results


def _filter(status: str) -> Any:
    from mlgate.db.queries.jobs import JobFilter

    return JobFilter(status=status)


def main() -> None:
    from mlgate.logs import configure_logging

    configure_logging("warning", "json")  # as `mlgate serve --log-level warning`: no line per request
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="bench", required=True)
    over = sub.add_parser("overhead")
    over.add_argument("--jobs", type=int, default=200)
    over.add_argument("--broker", default=None)
    scale = sub.add_parser("scaleout")
    scale.add_argument("--jobs", type=int, default=200)
    scale.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    if args.bench == "overhead":
        print(json.dumps(asyncio.run(overhead(args.jobs, args.broker))))
    else:
        for line in asyncio.run(scaleout(args.jobs, args.workers)):
            print(json.dumps(line))


if __name__ == "__main__":
    main()
