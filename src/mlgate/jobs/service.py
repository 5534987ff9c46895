"""``JobService``: what the REST API and the inference routes do with jobs: submit, read, list, cancel.

The service owns the job store and where jobs go once stored: the server's own ``JobRunner`` (no
``jobs_broker``: the embedded default) or the broker (``jobs_broker`` set: ``mlgate worker`` processes run
them). Who may see a job is decided here: its owner, and admins (``visible``).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import structlog

from mlgate import tracing
from mlgate.db.base import utcnow
from mlgate.db.engine import Database
from mlgate.db.notify import listen
from mlgate.db.queries.jobs import JOBS_CHANNEL, JobFilter, JobStore
from mlgate.db.tables.jobs import JobRecord
from mlgate.errors import DatabaseUnavailable, JobNotFound, RateLimited
from mlgate.inference.dataplane import DataPlane
from mlgate.jobs.broker import JobBroker
from mlgate.jobs.results import ResultStore
from mlgate.jobs.runner import JobRunner
from mlgate.jobs.views import job_view
from mlgate.jobs.webhooks import WebhookSender, check_webhook, server_secret, webhook_secret
from mlgate.settings import Settings

__all__ = ["JobService", "Submission", "job_view"]  # job_view: re-exported from mlgate.jobs.views

log = structlog.get_logger("mlgate.jobs")


@dataclass(frozen=True, slots=True)
class Submission:
    """One job to queue: whose (``owner`` ``user:<id>``, ``actor`` for the prediction log), which model, the
    protocol and its request body, an optional limit in ms, and the request id it came in with."""

    owner: str
    actor: str
    model: str
    version: str | None
    protocol: str
    body: Any
    timeout_ms: float | None = None
    request_id: str | None = None
    webhook: str | None = None
    """Where to POST the job when it ends (checked against ``jobs_webhook_hosts``)."""


EVENTS_POLL_S = 0.2
"""How often an event stream reads its job while no notifications come (SQLite, or the listener is down): the job
may run in another process, and the database is the truth."""
EVENTS_POLL_LISTENING_S = 5.0
"""The same while this process listens for the jobs' notifications (PostgreSQL): a safety net only."""


class JobWatch:
    """What ``JobService.watch`` yields: the changes this process makes to one job, in order."""

    def __init__(self) -> None:
        self.changes: asyncio.Queue[JobRecord | None] = asyncio.Queue()

    async def next(self, timeout_s: float) -> JobRecord | None:
        """The job's next row as this process changed it; None after ``timeout_s`` without one, or when the
        change is not at hand (progress; read the database: another process may have changed it too)."""
        try:
            return await asyncio.wait_for(self.changes.get(), timeout_s)
        except TimeoutError:
            return None


class JobService:
    """Jobs of one server: stored in ``database``, run by its own runner or handed to the broker."""

    def __init__(self, settings: Settings, database: Database, plane: DataPlane) -> None:
        self.settings = settings
        self.store = JobStore(database)
        self.results = ResultStore(settings)
        self.webhooks = WebhookSender(settings)
        self.broker = JobBroker(settings.jobs_broker, settings.jobs_queue, settings.jobs_concurrency) \
            if settings.jobs_broker else None
        self.runner = JobRunner(self.store, plane, settings, on_change=self._notify, webhooks=self.webhooks,
                                results=self.results) if self.broker is None else None
        self._watchers: dict[str, set[JobWatch]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self.listening = False
        """Whether this process hears the jobs' notifications (PostgreSQL: ``JOBS_CHANNEL``)."""
        self._webhook_key = server_secret(settings)

    def webhook_secret(self, actor: str) -> str:
        """The secret that signs the webhooks of the jobs ``actor`` submits (``mlgate.jobs.webhooks``)."""
        return webhook_secret(self._webhook_key, actor)

    @property
    def events_poll_s(self) -> float:
        """How often an event stream reads its job at least: changes made here reach it at once, and so do
        other processes' while this one listens for their notifications (PostgreSQL); else it polls."""
        return EVENTS_POLL_LISTENING_S if self.listening else EVENTS_POLL_S

    async def start(self) -> None:
        if self.store.database.url.get_backend_name() == "postgresql":
            self._listener = asyncio.create_task(
                listen(self.store.database, JOBS_CHANNEL, self._notified, on_state=self._listening),
                name="jobs-listener")
        if self.broker is not None:
            await self.broker.start()
            self._sweeper = asyncio.create_task(self._sweep(), name="jobs-sweeper")
        if self.runner is not None:
            await self.runner.start(poll_queue=True)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self.runner is not None:
            await self.runner.close()
        if self.broker is not None:
            await self.broker.close()
        await self.webhooks.close()

    def _notified(self, job_id: str) -> None:
        """Another process (or this one) changed the job: its watchers read it."""
        if job_id in self._watchers:
            self._notify(job_id)

    def _listening(self, listening: bool) -> None:
        self.listening = listening
        if listening:  # what changed while nobody listened: every watcher reads its job again
            for job_id in list(self._watchers):
                self._notify(job_id)

    def _notify(self, job_id: str, row: JobRecord | None = None) -> None:
        for watch in self._watchers.get(job_id, ()):
            watch.changes.put_nowait(row)

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[JobWatch]:
        """Receive the changes this process makes to the job (its own runner: claimed, progressed, ended; a
        cancel) while in the ``with``: the live events of the embedded default without reading the database.
        Enter it before reading the job, so that no change falls between."""
        watch = JobWatch()
        self._watchers.setdefault(job_id, set()).add(watch)
        try:
            yield watch
        finally:
            watchers = self._watchers.get(job_id)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self._watchers[job_id]

    async def _sweep(self) -> None:
        """With a broker: send again the jobs whose worker died (lease run out), whatever the broker does
        with their first message (Redis streams re-claim only when new messages arrive)."""
        assert self.broker is not None
        while True:
            await asyncio.sleep(self.settings.jobs_lease_s / 2)
            try:
                for job_id in await self.store.requeue_lapsed():
                    log.info("job requeued: its runner's lease ran out", job=job_id)
                    await self.broker.send(job_id)
            except Exception as exc:  # noqa: BLE001 - database or broker down: try again next round
                log.warning("jobs sweep failed", error=str(exc))

    async def submit(self, submission: Submission) -> JobRecord:
        """Store the job (``queued``) and queue it. 429 (RateLimited) when the owner already has
        ``jobs_max_queued_per_caller`` jobs queued or running; 503 when the database or broker is down."""
        webhook = check_webhook(submission.webhook, self.settings.jobs_webhook_hosts) if submission.webhook \
            else None
        job_id = secrets.token_hex(16)
        with tracing.span("job submit", kind="producer",
                          attributes={"mlgate.job.id": job_id, "mlgate.model": submission.model,
                                      "mlgate.job.protocol": submission.protocol}):
            return await self._queue(JobRecord(
                id=job_id, owner=submission.owner, actor=submission.actor, model=submission.model,
                version=submission.version, protocol=submission.protocol, status="queued",
                request=submission.body, timeout_ms=submission.timeout_ms, webhook=webhook,
                request_id=submission.request_id, traceparent=tracing.inject(), attempts=0, created_at=utcnow()))

    async def _queue(self, job: JobRecord) -> JobRecord:
        limit = self.settings.jobs_max_queued_per_caller
        if not await self.store.create(job, max_active=limit):
            raise RateLimited(f"you have {limit} jobs queued or running, the most allowed "
                              f"(jobs_max_queued_per_caller); wait for one to end", self._retry_after_s())
        if self.runner is not None:
            self.runner.notify(job.id, job.model)
        elif self.broker is not None:
            try:
                await self.broker.send(job.id)
            except Exception as exc:  # noqa: BLE001 - any transport error of the broker's client
                await self.store.cancel(job.id, self.settings.jobs_result_ttl_s)
                log.error("job broker unreachable", error=str(exc))
                raise DatabaseUnavailable("the job queue cannot be reached; try again shortly") from exc
        log.info("job queued", job=job.id, model=job.model, owner=job.owner)
        return job

    def _retry_after_s(self) -> float:
        """When a slot is likely free: a poll interval at least (jobs end on their own schedule)."""
        return max(1.0, self.settings.jobs_poll_interval_s)

    async def get(self, job_id: str, owner: str | None) -> JobRecord:
        """The job, if ``owner`` (None: an admin, every owner) may see it; else JobNotFound (404)."""
        job = await self.store.get(job_id) if len(job_id) <= 40 else None
        if job is None or (owner is not None and job.owner != owner):
            raise JobNotFound(job_id[:64])
        return job

    async def view(self, job: JobRecord) -> dict[str, Any]:
        position = await self.store.position(job) if job.status == "queued" else None
        return job_view(job, position=position)

    async def cancel(self, job: JobRecord) -> JobRecord:
        """Cancel a queued or running job (a running one is stopped: here at once, on a worker within
        ``jobs_poll_interval_s``) and send its webhook (status ``cancelled``); a job that had ended is
        returned as it is."""
        if await self.store.cancel(job.id, self.settings.jobs_result_ttl_s):
            if self.runner is not None:
                self.runner.stop(job.id)
            cancelled = await self.store.get(job.id) or job
            self._notify(job.id, cancelled)
            if cancelled.webhook:
                self.webhooks.send(cancelled.webhook, cancelled.actor, job_view(cancelled))
            return cancelled
        return await self.store.get(job.id) or job

    async def page(self, where: JobFilter, *, limit: int,
                   before_seq: int | None) -> tuple[list[dict[str, Any]], int | None]:
        rows, after = await self.store.page(where, limit=limit, before_seq=before_seq)
        return [job_view(row) for row in rows], after
