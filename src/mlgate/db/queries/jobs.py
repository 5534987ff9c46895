"""Jobs in the database: create, read, list (filters, keyset pagination), and the runner's conditional updates.

Every change of a job's status is one conditional ``UPDATE`` (``WHERE status = ...``), so two runners, or a
runner and a cancel, never both win: a job is claimed by one runner (``claim``), finished only by the runner
and attempt that claimed it (``finish``), and a cancelled job stays cancelled. That is what makes a job
complete exactly once as the caller sees it, even when a broker delivers its message twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, Select, func, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from mlgate.db.base import utcnow
from mlgate.db.engine import Database
from mlgate.db.notify import notify
from mlgate.db.tables.jobs import JobRecord
from mlgate.errors import DatabaseUnavailable

__all__ = ["JOBS_CHANNEL", "JobFilter", "JobStore"]

JOBS_CHANNEL = "mlgate_jobs"
"""On PostgreSQL, every change of a job's row (claimed, progress, ended, cancelled, back to the queue) sends its
id on this channel (``mlgate.db.notify``), so that event streams in other processes read it at once."""


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What ``JobStore.page`` returns: ``owner`` None for every owner (admins), the rest narrows."""

    owner: str | None = None
    status: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        t = JobRecord
        if self.owner is not None:
            stmt = stmt.where(t.owner == self.owner)
        if self.status is not None:
            stmt = stmt.where(t.status == self.status)
        if self.model is not None:
            stmt = stmt.where(t.model == self.model)
        if self.since is not None:
            stmt = stmt.where(t.created_at >= self.since)
        if self.until is not None:
            stmt = stmt.where(t.created_at < self.until)
        return stmt


def _claimable(now: datetime) -> Any:
    return or_(JobRecord.status == "queued", (JobRecord.status == "running") & (JobRecord.lease_until < now))


class JobStore:
    """The jobs table of ``database``. Raises DatabaseUnavailable (503) when the database cannot be reached."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        try:
            async with self.database.session() as session:
                yield session
        except (DBAPIError, OSError) as exc:
            raise DatabaseUnavailable("the jobs database cannot be reached; try again shortly") from exc

    async def _update(self, stmt: Any, changed: Iterable[str] = ()) -> int:
        """Run an ``UPDATE``; the rows it changed. When it changed any, ``changed`` (job ids) are notified."""
        async with self._session() as session:
            result: CursorResult[Any] = await session.execute(stmt)  # type: ignore[assignment]
            if result.rowcount:
                for job_id in changed:
                    await notify(session, JOBS_CHANNEL, job_id)
            return int(result.rowcount)

    async def _returning(self, stmt: Any) -> JobRecord | None:
        """Run a conditional ``UPDATE`` of one job; the updated row (``RETURNING``), None when none matched.
        The job is notified when it changed."""
        async with self._session() as session:
            row: JobRecord | None = (await session.execute(
                stmt.returning(JobRecord), execution_options={"synchronize_session": False})).scalar_one_or_none()
            if row is not None:
                await notify(session, JOBS_CHANNEL, row.id)
            return row

    # -- the API's side ---------------------------------------------------------------------------------

    async def create(self, job: JobRecord, *, max_active: int | None = None) -> bool:
        """Insert ``job`` (status ``queued``; it gets its ``seq``), in one transaction with the count of its
        owner's jobs queued or running: with ``max_active``, nothing is inserted (False) when the owner
        already has that many."""
        async with self._session() as session:
            if max_active is not None:
                active = (await session.execute(select(func.count()).select_from(JobRecord).where(
                    JobRecord.owner == job.owner, JobRecord.status.in_(("queued", "running"))))).scalar_one()
                if int(active) >= max_active:
                    return False
            session.add(job)
        return True

    async def get(self, job_id: str) -> JobRecord | None:
        async with self._session() as session:
            return (await session.execute(select(JobRecord).where(JobRecord.id == job_id))).scalar_one_or_none()

    async def position(self, job: JobRecord) -> int:
        """1-based place of a queued job in the queue (jobs queued before it, plus one)."""
        stmt = select(func.count()).select_from(JobRecord).where(
            JobRecord.status == "queued", JobRecord.seq < job.seq)
        async with self._session() as session:
            return int((await session.execute(stmt)).scalar_one()) + 1

    async def page(self, where: JobFilter, *, limit: int,
                   before_seq: int | None = None) -> tuple[list[JobRecord], int | None]:
        """One page, newest first, and the cursor (a ``seq``) of the next page (None at the end)."""
        stmt = where.apply(select(JobRecord))
        if before_seq is not None:
            stmt = stmt.where(JobRecord.seq < before_seq)
        stmt = stmt.order_by(JobRecord.seq.desc()).limit(limit + 1)
        async with self._session() as session:
            rows = list((await session.execute(stmt)).scalars())
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1].seq if more and rows else None)

    async def cancel(self, job_id: str, ttl_s: float) -> bool:
        """Mark a queued or running job ``cancelled``; False when it had already ended."""
        now = utcnow()
        return await self._update(update(JobRecord).where(
            JobRecord.id == job_id, JobRecord.status.in_(("queued", "running"))).values(
            status="cancelled", finished_at=now, lease_until=None, result=None,
            expires_at=now + timedelta(seconds=ttl_s),
            error={"status": 499, "code": "cancelled", "error": "the job was cancelled", "field": None,
                   "reason": "cancelled"}), [job_id]) == 1

    async def expire(self, ttl_s: float, limit: int = 1000) -> list[JobRecord]:
        """Drop the results of up to ``limit`` jobs that finished more than ``ttl_s`` ago (status ``expired``);
        those jobs as they were before (their ``result_uri``, to delete), without request and result."""
        cutoff = utcnow() - timedelta(seconds=ttl_s)
        ending = (JobRecord.status.in_(("succeeded", "failed", "cancelled")), JobRecord.finished_at < cutoff)
        async with self._session() as session:
            rows = list((await session.execute(select(JobRecord).where(*ending).options(
                defer(JobRecord.request), defer(JobRecord.result)).order_by(JobRecord.seq).limit(limit))).scalars())
            if rows:
                await session.execute(update(JobRecord).where(JobRecord.id.in_([r.id for r in rows]), *ending)
                                      .values(status="expired", result=None, result_uri=None)
                                      .execution_options(synchronize_session=False))
        return rows

    # -- the runner's side ------------------------------------------------------------------------------

    async def claimable(self, limit: int) -> list[tuple[str, str]]:
        """``(id, model)`` of up to ``limit`` jobs a runner may claim, oldest first: queued, or running past
        their lease."""
        stmt = select(JobRecord.id, JobRecord.model).where(_claimable(utcnow())).order_by(JobRecord.seq).limit(limit)
        async with self._session() as session:
            return [(job_id, model) for job_id, model in (await session.execute(stmt)).all()]

    async def claim(self, job_id: str, runner: str, lease_s: float) -> JobRecord | None:
        """Take the job for ``runner`` if it is queued, or running past its lease (its runner died); None when
        another runner holds it or it has ended. The returned row (one ``UPDATE ... RETURNING``) has the new
        ``attempts``."""
        now = utcnow()
        return await self._returning(update(JobRecord).where(JobRecord.id == job_id, _claimable(now)).values(
            status="running", runner=runner[:128], attempts=JobRecord.attempts + 1, progress=0.0,
            lease_until=now + timedelta(seconds=lease_s), started_at=now))

    async def renew(self, runner: str, job_ids: Iterable[str], lease_s: float) -> set[str]:
        """Extend the leases of ``runner``'s running jobs; returns the ids it no longer holds (cancelled,
        taken over after a lapsed lease), which the runner should stop."""
        ids = list(job_ids)
        if not ids:
            return set()
        async with self._session() as session:
            await session.execute(update(JobRecord).where(
                JobRecord.id.in_(ids), JobRecord.runner == runner[:128], JobRecord.status == "running").values(
                lease_until=utcnow() + timedelta(seconds=lease_s)))
            held = set((await session.execute(select(JobRecord.id).where(
                JobRecord.id.in_(ids), JobRecord.runner == runner[:128], JobRecord.status == "running"))).scalars())
        return set(ids) - held

    async def progress(self, job: JobRecord, value: float) -> None:
        await self._update(update(JobRecord).where(
            JobRecord.id == job.id, JobRecord.status == "running", JobRecord.attempts == job.attempts).values(
            progress=max(0.0, min(1.0, value))), [job.id])

    async def finish(self, job: JobRecord, *, result: dict[str, Any] | None = None,
                     error: dict[str, Any] | None = None, ttl_s: float,
                     result_uri: str | None = None) -> JobRecord | None:
        """End the attempt ``job`` holds: ``succeeded`` with ``result`` (or ``result_uri``: kept in the
        artifact store), else ``failed`` with ``error``. Returns the ended row; None (and nothing written)
        when the job is no longer this attempt's (cancelled, or taken over)."""
        now = utcnow()
        values: dict[str, Any] = {"status": "succeeded" if error is None else "failed", "result": result,
                                  "result_uri": result_uri, "error": error, "finished_at": now,
                                  "lease_until": None, "expires_at": now + timedelta(seconds=ttl_s)}
        if error is None:
            values["progress"] = 1.0
        return await self._returning(update(JobRecord).where(
            JobRecord.id == job.id, JobRecord.status == "running", JobRecord.attempts == job.attempts,
            JobRecord.runner == job.runner).values(**values))

    async def release(self, runner: str, job_ids: Iterable[str]) -> int:
        """Hand ``runner``'s running jobs back to the queue (the runner is shutting down)."""
        ids = list(job_ids)
        if not ids:
            return 0
        return await self._update(update(JobRecord).where(
            JobRecord.id.in_(ids), JobRecord.runner == runner[:128], JobRecord.status == "running").values(
            status="queued", runner=None, lease_until=None, progress=None), ids)

    async def requeue_lapsed(self, limit: int = 100) -> list[str]:
        """Put running jobs whose lease ran out (their runner died) back to ``queued``; their ids, to be sent
        to the broker again (a broker that lost or holds their message must not strand them)."""
        now = utcnow()
        stmt = select(JobRecord.id).where(JobRecord.status == "running", JobRecord.lease_until < now).limit(limit)
        async with self._session() as session:
            ids = list((await session.execute(stmt)).scalars())
        requeued = []
        for job_id in ids:
            if await self._update(update(JobRecord).where(
                    JobRecord.id == job_id, JobRecord.status == "running", JobRecord.lease_until < now).values(
                    status="queued", runner=None, lease_until=None), [job_id]) == 1:
                requeued.append(job_id)
        return requeued
