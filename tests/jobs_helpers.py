"""Shared by the job tests (tests/jobs/, tests/api/test_jobs.py): tiny real models and waiting for a job."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import httpx

from tests.fakes import sum_model, write_python_model

JOBS = "/api/v1/jobs"

SLEEPY_MODEL = '''
import time

class Model:
    """y = 2x, after sleeping parameters.sleep seconds (CPU-free: many run at once on two cores)."""

    def predict(self, batch, parameters):
        time.sleep(float(parameters.get("sleep", 0)))
        return {"y": batch["x"] * 2}
'''


def sleepy_model(root: Path, name: str = "sleepy", extra: str = "") -> Path:
    """Python model y = 2x over x FP32 [-1] that sleeps ``parameters.sleep`` seconds first."""
    return write_python_model(root, name, SLEEPY_MODEL, '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n',
                              '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n', extra)


def jobs_repo(root: Path) -> Path:
    """A repository with ``sum`` (row sums + 0.5 over x FP32 [-1, 3]) and ``sleepy``."""
    root.mkdir(parents=True, exist_ok=True)
    sum_model(root)
    sleepy_model(root)
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
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"job still {job['status']} after {timeout_s} s: {job}"
        await anyio.sleep(0.02)
