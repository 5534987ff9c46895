"""`mlgate jobs list|show|cancel` on a real database, and `mlgate worker` refusing to start without a broker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from mlgate.cli.main import app as cli
from mlgate.db.base import utcnow
from mlgate.db.engine import Database
from mlgate.db.migrate import upgrade
from mlgate.db.queries.jobs import JobStore
from mlgate.db.tables.jobs import JobRecord


def _jobs(data_dir: Path, count: int) -> list[str]:
    url = f"sqlite+aiosqlite:///{data_dir}/mlgate.db"
    upgrade(url)

    async def make() -> list[str]:
        database = Database(url)
        store = JobStore(database)
        ids = []
        for i in range(count):
            job = JobRecord(id=f"{i:032x}", owner="user:1", actor="user:ann", model="sum", version=None,
                            protocol="v2", status="queued", request={"inputs": []}, attempts=0, created_at=utcnow())
            await store.create(job)
            ids.append(job.id)
        await database.dispose()
        return ids

    return asyncio.run(make())


def test_jobs_list_show_cancel(tmp_path: Path) -> None:
    ids = _jobs(tmp_path, 2)
    runner = CliRunner(env={"MLGATE_DATA_DIR": str(tmp_path), "COLUMNS": "200"})
    listed = runner.invoke(cli, ["jobs", "list"])
    assert listed.exit_code == 0, listed.output
    assert all(job_id in listed.output for job_id in ids) and "queued" in listed.output
    shown = runner.invoke(cli, ["jobs", "show", ids[1]])
    assert shown.exit_code == 0, shown.output
    view = json.loads(shown.output)
    assert view["id"] == ids[1] and view["status"] == "queued" and view["position"] == 2
    cancelled = runner.invoke(cli, ["jobs", "cancel", ids[0]])
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output
    assert json.loads(runner.invoke(cli, ["jobs", "show", ids[0]]).output)["status"] == "cancelled"
    again = runner.invoke(cli, ["jobs", "cancel", ids[0]])
    assert again.exit_code == 1 and "already ended" in again.output
    only = runner.invoke(cli, ["jobs", "list", "--status", "cancelled"])
    assert ids[0] in only.output and ids[1] not in only.output
    assert runner.invoke(cli, ["jobs", "show", "nope"]).exit_code == 1
    assert runner.invoke(cli, ["jobs", "cancel", "nope"]).exit_code == 1
    bad = runner.invoke(cli, ["jobs", "list", "--status", "done"])
    assert bad.exit_code == 2 and "expected one of" in bad.output


def test_worker_needs_a_broker(tmp_path: Path) -> None:
    runner = CliRunner(env={"MLGATE_DATA_DIR": str(tmp_path)})
    result = runner.invoke(cli, ["worker"])
    assert result.exit_code == 2 and "no broker" in result.output
    result = runner.invoke(cli, ["worker", "--broker", "kafka://x"])
    assert result.exit_code == 2 and "amqp://" in result.output
