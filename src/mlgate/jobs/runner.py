"""The job runner: claims jobs, runs them on the data plane, keeps their leases, stops the cancelled ones.

One runner lives in each process that runs jobs: the server (the embedded default, which also polls the
database for queued jobs: ``start(poll_queue=True)``) or an ``mlgate worker`` (fed by the broker: ``run``).
A runner is named ``host:pid:random``. While a job runs, its runner renews the job's lease every third of
``jobs_lease_s`` (at most every ``jobs_poll_interval_s``); a job whose lease ran out (its runner died) is
claimable again, and a job its runner no longer holds (cancelled, taken over) is stopped within one interval.
Every status change is a conditional update (``mlgate.db.queries.jobs``), so a job ends once.

``jobs_models`` (``mlgate worker --model``, fnmatch patterns) narrows the models whose jobs a runner takes: a
job of another model delivered by the broker is handed back to it (``handback``) after a short pause, for a
runner that takes it; the embedded runner leaves such jobs queued.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from fnmatch import fnmatchcase
from typing import Any

import structlog

from mlgate import tracing
from mlgate.db.base import utcnow
from mlgate.db.queries.jobs import JobStore
from mlgate.db.tables.jobs import JobRecord
from mlgate.errors import DatabaseUnavailable
from mlgate.inference.dataplane import DataPlane
from mlgate.jobs.execute import error_body, execute
from mlgate.jobs.results import ResultStore
from mlgate.jobs.views import job_view
from mlgate.jobs.webhooks import WebhookSender
from mlgate.settings import Settings

__all__ = ["JobRunner", "ProgressReporter"]

log = structlog.get_logger("mlgate.jobs.runner")

EXPIRE_EVERY_S = 60.0
"""How often a runner drops results past ``jobs_result_ttl_s``."""
HANDBACK_PAUSE_S = 0.2
"""How long a runner holds a job of a model it does not take before handing it back to the broker (so that a
job no running worker takes circles slowly rather than spinning)."""

OnChange = Callable[[str, JobRecord | None], None]
"""Told a job's id and, when the runner has it, the job's new row (None: read it from the database)."""


def takes_model(patterns: Sequence[str], model: str) -> bool:
    """Whether a runner restricted to ``patterns`` (fnmatch, case-sensitive; empty: every model) takes ``model``."""
    return not patterns or any(fnmatchcase(model, pattern) for pattern in patterns)


class ProgressReporter:
    """A running job's ``Progress`` callback (``mlgate.runtimes.base``): the runtime's thread sets ``value``,
    the runner's keeper writes it to the database at its next round."""

    def __init__(self) -> None:
        self.value: float | None = None
        self.written: float | None = None

    def __call__(self, value: float) -> None:
        self.value = min(1.0, max(0.0, float(value)))


class JobRunner:
    """Runs up to ``settings.jobs_concurrency`` jobs at a time from ``store`` on ``plane``."""

    def __init__(self, store: JobStore, plane: DataPlane, settings: Settings, *, name: str | None = None,
                 on_change: OnChange | None = None, webhooks: WebhookSender | None = None,
                 results: ResultStore | None = None,
                 handback: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.store = store
        self.on_change = on_change
        """Told each job whose row this runner changed (started, progressed, ended): live events."""
        self.plane = plane
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.running: dict[str, asyncio.Task[None]] = {}
        self.progress: dict[str, tuple[JobRecord, ProgressReporter]] = {}
        self.webhooks = webhooks or WebhookSender(settings)
        self.results = results or ResultStore(settings)
        self.models = tuple(settings.jobs_models)
        self.handback = handback
        """Queues a job id on the broker again (a job of a model this runner does not take)."""
        self._wake = asyncio.Event()
        self._fresh: collections.deque[str] = collections.deque()
        """Jobs queued in this process since the last look (``notify``), to claim without a scan."""
        self._backlog = True
        """The last scan left claimable jobs behind (or none ran yet): scan before taking fresh jobs."""
        self._loops: list[asyncio.Task[None]] = []

    @property
    def interval_s(self) -> float:
        return min(self.settings.jobs_poll_interval_s, self.settings.jobs_lease_s / 3)

    async def start(self, *, poll_queue: bool) -> None:
        """Start keeping leases; with ``poll_queue``, also take queued jobs from the database (embedded)."""
        self._loops.append(asyncio.create_task(self._keep(), name="jobs-keeper"))
        if poll_queue:
            self._loops.append(asyncio.create_task(self._poll(), name="jobs-poller"))

    def notify(self, job_id: str | None = None, model: str | None = None) -> None:
        """A job was queued (in this process: ``job_id`` of ``model``): look now rather than at the next poll."""
        if job_id is not None and model is not None and takes_model(self.models, model):
            self._fresh.append(job_id)
        self._wake.set()

    def stop(self, job_id: str) -> None:
        """Stop the job if this runner is running it (it was cancelled)."""
        task = self.running.get(job_id)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        """Stop the loops and the running jobs, and hand those back to the queue for the next runner."""
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops.clear()
        held = list(self.running)
        for task in list(self.running.values()):
            task.cancel()
        await asyncio.gather(*self.running.values(), return_exceptions=True)
        with contextlib.suppress(DatabaseUnavailable):
            await self.store.release(self.name, held)
        await self.webhooks.close()

    async def run(self, job_id: str) -> None:
        """Claim and run one job (a broker delivered its id); return once it ended or is not this runner's.

        A job still ``running`` under another runner's lease was delivered again because the broker saw its
        runner go (RabbitMQ redelivers when a consumer's connection closes): wait for that lease to run out,
        then take it over. A job that has ended is left as it is (the delivery is acknowledged).
        """
        if self.models:
            current = await self.store.get(job_id)
            if current is not None and not takes_model(self.models, current.model):
                if current.status in ("queued", "running") and self.handback is not None:
                    await asyncio.sleep(HANDBACK_PAUSE_S)
                    await self.handback(job_id)
                return
        while True:
            job = await self.store.claim(job_id, self.name, self.settings.jobs_lease_s)
            if job is not None:
                break
            current = await self.store.get(job_id)
            if current is None or current.status not in ("queued", "running"):
                return
            left = (current.lease_until - utcnow()).total_seconds() if current.lease_until else 0.0
            await asyncio.sleep(min(self.interval_s, max(0.05, left)))
        await self._spawn(job)

    def _changed(self, job_id: str, row: JobRecord | None = None) -> None:
        if self.on_change is not None:
            self.on_change(job_id, row)

    def _spawn(self, job: JobRecord) -> asyncio.Task[None]:
        self._changed(job.id, job)  # claimed: running
        task = asyncio.create_task(self._execute(job), name=f"job-{job.id}")
        self.running[job.id] = task
        task.add_done_callback(lambda _: self._done(job.id))
        return task

    def _done(self, job_id: str) -> None:
        self.running.pop(job_id, None)
        self.progress.pop(job_id, None)
        if self._backlog:
            self._wake.set()  # a slot is free for a job left queued

    async def _execute(self, job: JobRecord) -> None:
        started = time.perf_counter()
        reporter = ProgressReporter()
        self.progress[job.id] = (job, reporter)
        try:
            # A child of the submitting request's span (its traceparent is on the row), in whatever process.
            with tracing.span("job run", kind="consumer", traceparent=job.traceparent,
                              attributes={"mlgate.job.id": job.id, "mlgate.model": job.model,
                                          "mlgate.job.attempt": job.attempts, "mlgate.job.runner": self.name}):
                result = await execute(self.plane, job.protocol, job.model, job.version, job.request,
                                       caller=job.actor, timeout_ms=job.timeout_ms, progress=reporter)
        except asyncio.CancelledError:
            log.info("job stopped", job=job.id, model=job.model)
            return
        except Exception as exc:  # noqa: BLE001 - the job fails with the error; the runner goes on
            ended = await self.store.finish(job, error=error_body(exc), ttl_s=self.settings.jobs_result_ttl_s)
        else:
            ended = await self._succeed(job, result)
        self._changed(job.id, ended)
        log.info("job ended", job=job.id, model=job.model, attempt=job.attempts, recorded=ended is not None,
                 ms=round((time.perf_counter() - started) * 1000, 1))
        if ended is not None and job.webhook:
            self.webhooks.send(job.webhook, job.actor, job_view(ended))

    async def _succeed(self, job: JobRecord, result: dict[str, Any]) -> JobRecord | None:
        """Record the result (a large one in the artifact store first); the ended row, None if lost."""
        try:
            inline, uri = await self.results.keep(job.id, job.attempts, result)
        except OSError as exc:
            log.error("job result could not be written to the artifact store", job=job.id, error=str(exc))
            return await self.store.finish(job, ttl_s=self.settings.jobs_result_ttl_s, error={
                "status": 503, "code": "unavailable", "field": None, "reason": "error",
                "error": "the result could not be stored (artifact store unavailable); submit the job again"})
        ended = await self.store.finish(job, result=inline, result_uri=uri, ttl_s=self.settings.jobs_result_ttl_s)
        if ended is None and uri is not None:
            await self.results.delete([uri])  # the job was cancelled or taken over meanwhile
        return ended

    async def _poll(self) -> None:
        woken = False
        while True:
            self._wake.clear()  # before looking: a job queued while we look wakes the next round at once
            try:
                if woken and self._fresh and not self._backlog:
                    await self._take_fresh()
                else:
                    await self._scan()
            except DatabaseUnavailable:
                log.warning("jobs database unavailable; retrying")
            woken = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.jobs_poll_interval_s)
                woken = True

    async def _take_fresh(self) -> None:
        """The queue was empty at the last scan: the jobs queued here since are the oldest; claim them as they
        come, without reading the queue (what does not fit waits for the next scan, in order)."""
        while self._fresh and len(self.running) < self.settings.jobs_concurrency:
            job = await self.store.claim(self._fresh.popleft(), self.name, self.settings.jobs_lease_s)
            if job is not None:
                self._spawn(job)
        if self._fresh:
            self._fresh.clear()
            self._backlog = True

    async def _scan(self) -> None:
        """Claim the oldest claimable jobs (queued, or past their lease) while this runner has room."""
        self._fresh.clear()  # the scan sees them
        free = self.settings.jobs_concurrency - len(self.running)
        if free <= 0:
            self._backlog = True
            return
        wanted = free + len(self.running)
        found = await self.store.claimable(wanted)
        for job_id, model in found:
            if job_id in self.running or len(self.running) >= self.settings.jobs_concurrency \
                    or not takes_model(self.models, model):
                continue
            job = await self.store.claim(job_id, self.name, self.settings.jobs_lease_s)
            if job is not None:
                self._spawn(job)
        self._backlog = len(found) >= wanted or len(self.running) >= self.settings.jobs_concurrency

    async def _keep(self) -> None:
        expired_at = 0.0
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                for job_id in await self.store.renew(self.name, list(self.running), self.settings.jobs_lease_s):
                    self.stop(job_id)  # cancelled, or taken over after our lease lapsed
                for job, reporter in list(self.progress.values()):
                    value = reporter.value
                    if value is not None and value != reporter.written:
                        await self.store.progress(job, value)
                        reporter.written = value
                        self._changed(job.id)
                if time.monotonic() - expired_at > min(EXPIRE_EVERY_S, self.settings.jobs_result_ttl_s):
                    expired_at = time.monotonic()
                    await self.expire()
            except DatabaseUnavailable:
                log.warning("jobs database unavailable; leases not renewed")

    async def expire(self) -> int:
        """Expire the jobs that ended more than ``jobs_result_ttl_s`` ago: drop their results (those in the
        artifact store too) and send their webhooks (status ``expired``); how many."""
        rows = await self.store.expire(self.settings.jobs_result_ttl_s)
        await self.results.delete([row.result_uri for row in rows if row.result_uri])
        for row in rows:
            self._changed(row.id)
            if row.webhook:
                self.webhooks.send(row.webhook, row.actor, job_view(row) | {"status": "expired"})
        if rows:
            log.info("job results expired", jobs=len(rows))
        return len(rows)
