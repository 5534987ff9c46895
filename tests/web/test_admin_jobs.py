"""The admin's jobs table: admins list jobs with filters and see no request or result; deployers get 403."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgate.auth import Role
from tests.jobs_helpers import JOBS, jobs_repo, sum_body, wait_for
from tests.secure import bearer, secure_app
from tests.web.test_admin import signed_in

pytestmark = pytest.mark.anyio


async def test_admins_see_jobs_with_filters_deployers_do_not(tmp_path: Path) -> None:
    async with secure_app(jobs_repo(tmp_path / "models"), data_dir=tmp_path / "d") as sec:
        await sec.user("root", Role.ADMIN)
        await sec.user("dora", Role.DEPLOYER)
        await sec.user("ann")
        ann = bearer(await sec.key("ann"))
        job = (await sec.client.post(JOBS, json={"model": "sum", "request": sum_body([[123.25, 0, 0]])},
                                     headers=ann)).json()
        await wait_for(sec.client, job["id"], {"succeeded"}, ann)
        async with signed_in(sec, "root") as (client, _):
            listed = await client.get("/admin/job-record/list")
            assert listed.status_code == 200 and job["id"] in listed.text
            done = await client.get("/admin/job-record/list?status=succeeded&status_op=equals")
            assert job["id"] in done.text
            queued = await client.get("/admin/job-record/list?status=queued&status_op=equals")
            assert job["id"] not in queued.text
            details = await client.get("/admin/job-record/details/1")
            assert details.status_code == 200 and job["id"] in details.text
            assert "123.25" not in details.text  # the caller's input stays out of the admin
        async with signed_in(sec, "dora") as (client, _):
            assert (await client.get("/admin/job-record/list")).status_code == 403
