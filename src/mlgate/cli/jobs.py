"""``mlgate jobs list|show|cancel``: inference jobs, read and cancelled in the database (an operator's view:
every owner's jobs). A running job that is cancelled here is stopped by its runner within
``jobs_poll_interval_s``."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich import box
from rich.table import Table

from mlgate.cli.common import ConfigOption, err, on_database, out

__all__ = ["jobs_app"]

jobs_app = typer.Typer(help="Inspect and cancel inference jobs (every owner's).", no_args_is_help=True)
DatabaseOption = Annotated[str | None, typer.Option(help="SQLAlchemy URL [default: settings].", show_default=False)]
T = TypeVar("T")

if TYPE_CHECKING:
    from mlgate.db.queries.jobs import JobStore
    from mlgate.db.tables.jobs import JobRecord


def _run(config: Path | None, database_url: str | None, work: Callable[[JobStore, float], Awaitable[T]]) -> T:
    from mlgate.db.queries import jobs as queries

    return on_database(config, database_url,
                       lambda settings, database: work(queries.JobStore(database), settings.jobs_result_ttl_s))


@jobs_app.command("list")
def jobs_list(
    status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
    model: Annotated[str | None, typer.Option(help="Only jobs of this model.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 50,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """List jobs, newest first."""
    from mlgate.db.queries.jobs import JobFilter
    from mlgate.db.tables.jobs import JOB_STATUSES

    if status is not None and status not in JOB_STATUSES:
        err.print(f"[red]error:[/red] --status {status!r}: expected one of {', '.join(JOB_STATUSES)}")
        raise typer.Exit(2)

    async def work(store: JobStore, _: float) -> list[JobRecord]:
        rows, _after = await store.page(JobFilter(status=status, model=model), limit=limit)
        return rows

    rows = _run(config, database_url, work)
    # Readable in 80 columns: two lines per job (status over progress, model over version, created over finished).
    table = Table(title="Jobs", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("status\nprogress", overflow="fold", min_width=9)
    table.add_column("model\nversion", overflow="fold", ratio=2)
    table.add_column("owner", overflow="fold", ratio=2)
    table.add_column("created (UTC)\nfinished", no_wrap=True)
    for job in rows:
        table.add_row(job.id, f"{job.status}\n{'-' if job.progress is None else f'{job.progress:.0%}'}",
                      f"{job.model}\n{job.version or '-'}", job.owner,
                      f"{job.created_at:%Y-%m-%d %H:%M:%S}\n"
                      f"{f'{job.finished_at:%Y-%m-%d %H:%M:%S}' if job.finished_at else '-'}")
        table.add_section()
    out.print(table)


@jobs_app.command("show")
def jobs_show(job_id: Annotated[str, typer.Argument(help="The job's id.")], config: ConfigOption = None,
              database_url: DatabaseOption = None) -> None:
    """Show one job as JSON (as GET /api/v1/jobs/{id} shows it)."""
    from mlgate.jobs.service import job_view

    async def work(store: JobStore, _: float) -> dict[str, object] | None:
        job = await store.get(job_id)
        if job is None:
            return None
        return job_view(job, position=await store.position(job))

    view = _run(config, database_url, work)
    if view is None:
        err.print(f"[red]error:[/red] no job '{job_id}'")
        raise typer.Exit(1)
    out.print_json(json.dumps(view))


@jobs_app.command("cancel")
def jobs_cancel(job_id: Annotated[str, typer.Argument(help="The job's id.")], config: ConfigOption = None,
                database_url: DatabaseOption = None) -> None:
    """Cancel a queued or running job."""

    async def work(store: JobStore, ttl_s: float) -> tuple[bool, str | None]:
        done = await store.cancel(job_id, ttl_s)
        job = await store.get(job_id)
        return done, job.status if job is not None else None

    cancelled, status = _run(config, database_url, work)
    if status is None:
        err.print(f"[red]error:[/red] no job '{job_id}'")
        raise typer.Exit(1)
    if not cancelled:
        err.print(f"job {job_id} had already ended: {status}")
        raise typer.Exit(1)
    out.print(f"job {job_id} cancelled")
