"""Shared by the job tests (tests/jobs/, tests/api/test_jobs.py): tiny real models and waiting for a job."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest

from tests.fakes import sum_model, write_python_model
from tests.services import unavailable

JOBS = "/api/v1/jobs"

SLEEPY_MODEL = '''
import time

class Model:
    """y = 2x, after sleeping parameters.sleep seconds (CPU-free: many run at once on two cores)."""

    def predict(self, batch, parameters):
        time.sleep(float(parameters.get("sleep", 0)))
        return {"y": batch["x"] * 2}
'''


PROGRESS_MODEL = '''
import time

class Model:
    """y = 2x in parameters.steps steps of parameters.step_s seconds, reporting progress after each."""

    def predict(self, batch, parameters, progress):
        steps = int(parameters.get("steps", 4))
        for i in range(steps):
            time.sleep(float(parameters.get("step_s", 0.3)))
            progress((i + 1) / steps)
        return {"y": batch["x"] * 2}
'''


def sleepy_model(root: Path, name: str = "sleepy", extra: str = "") -> Path:
    """Python model y = 2x over x FP32 [-1] that sleeps ``parameters.sleep`` seconds first."""
    return write_python_model(root, name, SLEEPY_MODEL, '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n',
                              '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n', extra)


def jobs_repo(root: Path) -> Path:
    """A repository with ``sum`` (row sums + 0.5 over x FP32 [-1, 3]), ``sleepy`` and ``progress`` (y = 2x in
    steps, reporting its progress)."""
    root.mkdir(parents=True, exist_ok=True)
    sum_model(root)
    sleepy_model(root)
    write_python_model(root, "progress", PROGRESS_MODEL, '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n',
                       '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n')
    return root


def sum_body(rows: list[list[float]] | None = None) -> dict[str, Any]:
    rows = rows or [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    return {"inputs": [{"name": "x", "shape": [len(rows), 3], "datatype": "FP32",
                        "data": [v for row in rows for v in row]}]}


def sleepy_body(sleep: float, x: float = 1.0) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [x]}],
            "parameters": {"sleep": sleep}}


async def wait_for(client: httpx.AsyncClient, job_id: str, statuses: set[str], headers: dict[str, str],
                   timeout_s: float = 30.0) -> dict[str, Any]:
    """Poll ``GET /api/v1/jobs/{id}`` until its status is one of ``statuses``; the job."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = await client.get(f"{JOBS}/{job_id}", headers=headers)
        if response.status_code == 429:  # polling 100 jobs can pass the key's rate limit: wait as told
            assert time.monotonic() < deadline, response.text
            await anyio.sleep(float(response.headers.get("retry-after", "1")))
            continue
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"job still {job['status']} after {timeout_s} s: {job}"
        await anyio.sleep(0.05)


RABBITMQ_URL = os.environ.get("MLGATE_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


async def _delete_queue(url: str, name: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(url, timeout=5)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)
        await channel.exchange_delete(name)


@pytest.fixture
def rabbitmq_queue() -> Iterator[tuple[str, str]]:
    """``(amqp url, queue name)``: the real RabbitMQ and a queue (and exchange) of this test's own, deleted
    afterwards. Skipped (failed under MLGATE_REQUIRE_SERVICES=1) when RabbitMQ cannot be reached."""
    name = f"mlgate-test-{uuid.uuid4().hex[:10]}"
    try:
        with socket.create_connection(("127.0.0.1", int(urlsplit(RABBITMQ_URL).port or 5672)), timeout=2):
            pass
    except OSError as exc:
        unavailable(f"RabbitMQ at {RABBITMQ_URL}", exc)
    try:
        yield RABBITMQ_URL, name
    finally:
        asyncio.run(_delete_queue(RABBITMQ_URL, name))


@contextmanager
def worker_process(repository: Path, log_path: Path, env: dict[str, str],
                   ready_timeout_s: float = 90, args: Sequence[str] = ()) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``mlgate worker`` on ``repository`` (and ``args``); yields the process once it logged "worker
    ready". Stopped with SIGTERM on exit unless the test killed it."""
    full_env = {**os.environ, "MLGATE_LOG_FORMAT": "json", **env}
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mlgate", "worker", "--model-repository", str(repository),
                                 *args],
                                stdout=log, stderr=subprocess.STDOUT, env=full_env)
        try:
            deadline = time.monotonic() + ready_timeout_s
            while b"worker ready" not in log_path.read_bytes():
                assert proc.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "worker did not start in time:\n" + log_path.read_text()[-3000:]
                time.sleep(0.1)
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
