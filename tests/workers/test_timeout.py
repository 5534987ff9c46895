"""Execution limits that stop the work: a model's ``timeout_ms`` kills the worker process computing past it,
for synchronous requests (504) and jobs (failed, reason timeout) alike, and the instance serves again."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from mlgate.auth import Role
from tests.jobs_helpers import JOBS, sleepy_body, sleepy_model, wait_for
from tests.secure import bearer, secure_app

pytestmark = pytest.mark.anyio


async def _pid(sec_app: object) -> list[int]:
    handle = sec_app.app.state.mlgate.dataplane.model("stuck")  # type: ignore[attr-defined]
    pool = handle.executor.inner  # the batcher's inner executor: the worker pool
    return list(pool.pids)


async def test_past_timeout_ms_the_worker_is_killed_the_caller_gets_504_and_the_instance_recovers(
        tmp_path: Path) -> None:
    sleepy_model(tmp_path / "models", "stuck", extra="instances = 1\ntimeout_ms = 1500\n")
    async with secure_app(tmp_path / "models", data_dir=tmp_path / "d", anonymous_models=["stuck"]) as sec:
        before = await _pid(sec)
        started = time.monotonic()
        response = await sec.client.post("/v2/models/stuck/infer", json=sleepy_body(30))
        assert response.status_code == 504, response.text
        assert response.json()["code"] == "deadline_exceeded"
        assert time.monotonic() - started < 5
        with anyio.fail_after(30):  # restarted: a new process serves the next request
            while True:
                again = await sec.client.post("/v2/models/stuck/infer", json=sleepy_body(0, 4))
                if again.status_code == 200:
                    break
                await anyio.sleep(0.2)
        assert again.json()["outputs"][0]["data"] == [8.0]
        after = await _pid(sec)
        assert after and after != before

        await sec.user("ann", Role.USER)
        ann = bearer(await sec.key("ann"))
        job = (await sec.client.post(JOBS, json={"model": "stuck", "request": sleepy_body(30)}, headers=ann)).json()
        done = await wait_for(sec.client, job["id"], {"succeeded", "failed"}, ann, timeout_s=20)
        assert done["status"] == "failed" and done["error"]["reason"] == "timeout"
        assert done["error"]["code"] == "deadline_exceeded"
        with anyio.fail_after(30):
            while (await sec.client.post("/v2/models/stuck/infer", json=sleepy_body(0))).status_code != 200:
                await anyio.sleep(0.2)
        assert (await _pid(sec)) not in ([], after)
