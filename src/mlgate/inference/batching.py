"""The model's queue and dynamic batcher: an Executor in front of the one that runs the model.

Requests wait in one bounded FIFO queue per model version (``max_queue_size`` requests; one more gets
QueueFull, 503 with Retry-After). A collector task takes them out as batches and dispatches each batch to
the inner executor as soon as one of the model's ``concurrency`` instances is free (1 in-process, N worker
processes).

With ``max_batch_size > 0`` (rows), concurrent requests are merged: their rows are concatenated along
axis 0 into one runtime call and the outputs are split back, row ``i`` of the answer to row ``i`` of its
request. A request larger than ``max_batch_size`` is split into chunks that are queued in order and joined
again. Only requests with the same input names, datatypes, non-batch dimensions and ``parameters`` are
merged. A batch goes when its rows reach ``max_batch_size`` or one of ``preferred_batch_sizes``, when the
next request of its kind does not fit, or at its deadline: ``max_queue_delay_ms`` after its first request
entered the queue, computed once from the injected ``clock`` (``time.monotonic``).

When a merged runtime call fails, the requests in it are run again one at a time, so that one caller's bad
row (bytes that are not UTF-8 for a text model, a value the model rejects) fails only that caller's request.

Jobs and synchronous calls share the queue fairly: a request carrying a job's progress callback
(``PROGRESS_PARAMETER``, which ``mlgate.jobs`` always sends) is a job's, and while requests of both kinds wait,
batches alternate between them (each batch starting at the oldest request of its kind). So a synchronous call
waits for at most one job batch per instance ahead of it, however many jobs are queued, and jobs still
progress under a steady synchronous load; with only one kind waiting, the queue is plain FIFO.

If the collector dies, every queued request fails with BatcherStopped (503), and so do later ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import structlog

from mlgate import tracing
from mlgate.errors import BatcherStopped, ModelNotReady, Overloaded, QueueFull
from mlgate.metrics import ModelMetrics
from mlgate.runtimes.base import PROGRESS_PARAMETER, Batch, Executor, split_progress

__all__ = ["Clock", "DynamicBatcher", "merge_key"]

log = structlog.get_logger("mlgate.inference.batching")

Clock = Callable[[], float]
"""Seconds from an arbitrary origin, never going back (``time.monotonic``)."""


def merge_key(batch: Batch, parameters: Mapping[str, Any]) -> Hashable:
    """What two requests must share to be merged: inputs' names, dtypes, non-batch dims; parameters."""
    tensors = tuple((name, array.dtype, array.shape[1:]) for name, array in sorted(batch.items()))
    if PROGRESS_PARAMETER in parameters:  # a job's progress callback: jobs merge, each told the batch's progress
        parameters = split_progress(parameters)[0]
    try:
        params: Hashable = orjson.dumps(parameters, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        params = object()  # not JSON: never merged with anything
    return tensors, params


@dataclass(eq=False)
class _Request:
    future: asyncio.Future[Batch]
    key: Hashable
    parameters: Mapping[str, Any]
    enqueued: float
    results: list[Batch | None]
    undispatched: int
    job: bool = False
    """A job's request (it carries a progress callback): served in turn with synchronous calls."""
    trace: Any = None
    """The caller's tracing context (``mlgate.tracing``; None when off): the parent of its batch's span."""


@dataclass(eq=False)
class _Item:
    """One chunk of a request (the whole request unless it is larger than max_batch_size)."""

    request: _Request
    index: int
    inputs: Batch
    rows: int
    queued: bool = field(default=True)


class DynamicBatcher:
    """Executor that queues, merges and dispatches requests to ``inner`` (see the module docstring)."""

    def __init__(
        self, inner: Executor, *, max_batch_size: int = 0, max_queue_delay_ms: float = 0.0,
        preferred_batch_sizes: Sequence[int] = (), max_queue_size: int = 1024, concurrency: int = 1,
        metrics: ModelMetrics | None = None, clock: Clock = time.monotonic, name: str = "",
    ) -> None:
        self.inner = inner
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_ms / 1000.0
        self.preferred = frozenset(preferred_batch_sizes)
        self.max_queue_size = max_queue_size
        self.metrics = metrics
        self.clock = clock
        self.name = name
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._busy = 0  # batches computing
        self._service_s: float | None = None  # moving average of seconds per runtime call (None: none yet)
        self._per_batch = 1.0  # moving average of requests per runtime call
        self._queue: deque[_Item] = deque()
        self._jobs_turn = False  # while both kinds wait: whose batch is next (see the module docstring)
        self._waiting = 0  # requests with a chunk still queued
        self._queued_rows = 0  # rows of the items in the queue (an item of no rows counts 1)
        # While the collector waits, an arrival wakes it once _queued_rows reaches _wake_rows, or once the clock
        # reaches _wake_at (a filling batch's deadline); both are set right before each wait.
        self._wake_rows = 1
        self._wake_at = math.inf
        self._arrived = asyncio.Event()
        self._collector: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._failed = False
        self._closing = False

    @property
    def queue_depth(self) -> int:
        """Requests waiting in the queue (not yet dispatched)."""
        return self._waiting

    def estimated_wait_s(self) -> float | None:
        """Seconds a request arriving now would take: the batches ahead of it (queued requests over the
        requests per call, plus those computing) spread over ``concurrency``, times the measured seconds per
        call, plus its own call. None until a call was measured."""
        if self._service_s is None:
            return None
        ahead = self._waiting / self._per_batch + self._busy
        estimate = (ahead / self._concurrency + 1.0) * self._service_s
        if self.metrics is not None and self.metrics.estimated_wait is not None:
            self.metrics.estimated_wait.set(estimate)
        return estimate

    def admit(self, deadline_s: float) -> None:
        """Admission control: refuse at once (Overloaded, 503 with Retry-After) a request that would wait in
        the queue past ``deadline_s`` seconds by the estimate. Never refuses when nothing is queued."""
        estimate = self.estimated_wait_s()
        if estimate is None or self._waiting == 0 or estimate <= deadline_s:
            return
        raise Overloaded(f"model '{self.name}' is busy: {self._waiting} requests are queued and the estimated "
                         f"wait is {estimate * 1000:.0f} ms, past this request's {deadline_s * 1000:g} ms timeout; "
                         "retry after Retry-After seconds", estimate - deadline_s)

    async def __call__(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        """Queue ``batch`` and await its outputs. Raises QueueFull, BatcherStopped, ModelNotReady (503)."""
        if self._failed:
            raise BatcherStopped(f"the dynamic batcher of model '{self.name}' stopped; the server log says why")
        if self._closing:
            raise ModelNotReady(f"model '{self.name}' is being unloaded")
        if self._waiting >= self.max_queue_size:
            raise QueueFull(f"model '{self.name}' has {self._waiting} requests waiting (max_queue_size "
                            f"{self.max_queue_size}); retry later")
        if self._collector is None:
            self._collector = asyncio.get_running_loop().create_task(self._collect_forever())
        rows = next(iter(batch.values())).shape[0] if batch else 0
        step = self.max_batch_size if 0 < self.max_batch_size < rows else max(rows, 1)
        starts = range(0, max(rows, 1), step)
        request = _Request(asyncio.get_running_loop().create_future(), merge_key(batch, parameters), parameters,
                           self.clock(), [None] * len(starts), len(starts), PROGRESS_PARAMETER in parameters,
                           tracing.current_context())
        if len(starts) == 1:
            items = [_Item(request, 0, batch, rows)]
        else:
            items = [_Item(request, i, {k: v[s:s + step] for k, v in batch.items()}, min(step, rows - s))
                     for i, s in enumerate(starts)]
        self._queue.extend(items)
        self._queued_rows += max(rows, 1)
        self._set_waiting(self._waiting + 1)
        if self._queued_rows >= self._wake_rows or request.enqueued >= self._wake_at:
            self._arrived.set()
        try:
            return await request.future
        finally:
            if request.undispatched:  # cancelled (the request's deadline) before all of it was dispatched
                self._queue = deque(item for item in self._queue if item.request is not request)
                self._queued_rows = sum(max(item.rows, 1) for item in self._queue)
                request.undispatched = 0
                self._set_waiting(self._waiting - 1)

    async def close(self) -> None:
        """Stop taking requests, fail the queued ones (503), let running batches finish, close ``inner``."""
        self._closing = True
        if self._collector is not None:
            self._collector.cancel()
            await asyncio.gather(self._collector, return_exceptions=True)
        self._fail_queued(lambda: ModelNotReady(f"model '{self.name}' was unloaded before it ran this request"))
        await asyncio.gather(*self._running, return_exceptions=True)
        await self.inner.close()

    # -- the collector ------------------------------------------------------------------------------

    async def _collect_forever(self) -> None:
        try:
            while True:
                while not self._queue:
                    self._wake_rows, self._wake_at = 1, math.inf  # any arrival
                    self._arrived.clear()
                    await self._arrived.wait()
                await self._slots.acquire()
                items = await self._next_batch()
                if not items:
                    self._slots.release()
                    continue
                self._busy += 1
                task = asyncio.get_running_loop().create_task(self._run(items))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
        except BaseException as exc:
            if not self._closing:
                log.error("dynamic batcher collector died; failing its queued requests", model=self.name,
                          exc_info=exc)
                self._failed = True
                self._fail_queued(lambda: BatcherStopped(
                    f"the dynamic batcher of model '{self.name}' stopped; the server log says why"))
            if not isinstance(exc, Exception):
                raise

    async def _next_batch(self) -> list[_Item]:
        """Wait for the batch at the head of the queue to be complete, take it out, and return it."""
        if not self._queue:
            return []
        head = self._head()
        if not self.max_batch_size:
            items = [head]
        else:
            deadline = head.request.enqueued + self.max_queue_delay_s  # the batch's one deadline
            while True:
                if not self._queue:
                    return []
                if head not in self._queue:  # its request was cancelled while the batch filled
                    head = self._head()
                    deadline = head.request.enqueued + self.max_queue_delay_s
                items, rows, full = self._gather(head.request.key, start=head)
                remaining = deadline - self.clock()
                if full or rows >= self.max_batch_size or rows in self.preferred or remaining <= 0:
                    break
                # Sleep until enough rows arrived to reach the next size that would send the batch (any key's
                # rows count, so it may wake early, never late) or the deadline; not at every arrival.
                target = min((size for size in self.preferred if size > rows), default=self.max_batch_size)
                self._wake_rows = self._queued_rows + min(target, self.max_batch_size) - rows
                self._wake_at = deadline
                self._arrived.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await self._arrived.wait()
                except TimeoutError:
                    pass
        taken = set(map(id, items))
        self._queue = deque(item for item in self._queue if id(item) not in taken)
        self._queued_rows -= sum(max(item.rows, 1) for item in items)
        self._jobs_turn = not head.request.job  # the other kind goes next, if it waits
        for item in items:
            item.queued = False
            item.request.undispatched -= 1
            if item.request.undispatched == 0:
                self._set_waiting(self._waiting - 1)
        return items

    def _head(self) -> _Item:
        """The first item of the next batch: the oldest of the kind whose turn it is, if any waits, else the
        oldest (the queue is not empty)."""
        for item in self._queue:
            if item.request.job == self._jobs_turn:
                return item
        return self._queue[0]

    def _gather(self, key: Hashable, start: _Item) -> tuple[list[_Item], int, bool]:
        """``start`` and the items after it that merge with it (same ``key``), up to ``max_batch_size`` rows."""
        items: list[_Item] = []
        rows = 0
        started = False
        for item in self._queue:
            started = started or item is start
            if not started or item.request.key != key:
                continue
            if rows + item.rows > self.max_batch_size:
                return items, rows, True
            items.append(item)
            rows += item.rows
        return items, rows, False

    async def _run(self, items: list[_Item]) -> None:
        try:
            started = self.clock()
            rows = [item.rows for item in items]
            if self.metrics is not None:
                for item in items:
                    self.metrics.queue_wait.observe(started - item.request.enqueued)
                self.metrics.batch_size.observe(sum(rows))
            if len(items) == 1:
                merged = items[0].inputs
            else:
                merged = {name: np.concatenate([item.inputs[name] for item in items]) for name in items[0].inputs}
            try:
                with self._traced(items, sum(rows)):
                    outputs = await self.inner(merged, _merged_parameters(items))
                took = self.clock() - started
                self._service_s = took if self._service_s is None else 0.8 * self._service_s + 0.2 * took
                self._per_batch = 0.8 * self._per_batch + 0.2 * len({id(item.request) for item in items})
                if self.metrics is not None:
                    self.metrics.compute.observe(took)
                parts = [outputs] if len(items) == 1 else _split(outputs, rows)
            except _ENGINE_ERRORS:
                raise
            except Exception as exc:
                if len({id(item.request) for item in items}) == 1:
                    raise
                # One request's rows may be what failed: run each request's rows alone, so that the error
                # reaches only the request that caused it.
                log.info("merged batch failed; running its requests one at a time", model=self.name,
                         requests=len(items), error=f"{type(exc).__name__}: {str(exc)[:200]}")
                await self._run_alone(items)
                return
            for item, part in zip(items, parts, strict=True):
                self._deliver(item, part)
        except Exception as exc:  # noqa: BLE001 - handed to each caller, whose data plane maps it
            for item in items:
                if not item.request.future.done():
                    item.request.future.set_exception(exc)
        finally:
            self._busy -= 1
            self._slots.release()
            self.estimated_wait_s()  # keeps the exported estimate current

    def _traced(self, items: Sequence[_Item], rows: int) -> AbstractContextManager[Any]:
        """The span of one runtime call (tracing on): parent the first request, links the others."""
        if not tracing.active():
            return contextlib.nullcontext()
        requests = list({id(item.request): item.request for item in items}.values())
        model, _, version = self.name.rpartition(":")  # the engine names a batcher <model>:<version>
        return tracing.span(f"model {model or version}", parent=requests[0].trace,
                            links=[r.trace for r in requests[1:] if r.trace is not None],
                            attributes={"mlgate.model": model or version, "mlgate.model_version": version,
                                        "mlgate.batch.rows": rows, "mlgate.batch.requests": len(requests)})

    async def _run_alone(self, items: list[_Item]) -> None:
        """Each item of a failed merged batch in its own runtime call; an error fails only its request."""
        for item in items:
            if item.request.future.done():
                continue  # another chunk of the same request failed already
            try:
                started = self.clock()
                outputs = await self.inner(item.inputs, item.request.parameters)
                if self.metrics is not None:
                    self.metrics.batch_size.observe(item.rows)
                    self.metrics.compute.observe(self.clock() - started)
                self._deliver(item, _split(outputs, [item.rows])[0])
            except Exception as exc:  # noqa: BLE001 - handed to this caller only
                if not item.request.future.done():
                    item.request.future.set_exception(exc)

    def _deliver(self, item: _Item, outputs: Batch) -> None:
        request = item.request
        request.results[item.index] = outputs
        if request.future.done() or any(part is None for part in request.results):
            return
        if len(request.results) == 1:
            request.future.set_result(outputs)
            return
        parts = [part for part in request.results if part is not None]
        request.future.set_result({name: np.concatenate([part[name] for part in parts]) for name in parts[0]})

    def _fail_queued(self, error: Callable[[], Exception]) -> None:
        for item in self._queue:
            item.request.undispatched = 0
            if not item.request.future.done():
                item.request.future.set_exception(error())
        self._queue.clear()
        self._queued_rows = 0
        self._set_waiting(0)

    def _set_waiting(self, value: int) -> None:
        self._waiting = value
        if self.metrics is not None:
            self.metrics.queue_depth.set(value)


_ENGINE_ERRORS = (BatcherStopped, ModelNotReady, QueueFull)
"""Failures of the engine itself, not of a request's rows: never retried request by request."""


def _merged_parameters(items: Sequence[_Item]) -> Mapping[str, Any]:
    """The parameters of a batch (its requests share them), with one progress callback telling every job's."""
    parameters = items[0].request.parameters
    callbacks = {id(item.request): split_progress(item.request.parameters)[1] for item in items}
    reporters = [callback for callback in callbacks.values() if callback is not None]
    if len(callbacks) == 1 or not reporters:
        return parameters

    def progress(value: float) -> None:
        for report in reporters:
            report(value)

    return {**split_progress(parameters)[0], PROGRESS_PARAMETER: progress}


def _split(outputs: Batch, rows: Sequence[int]) -> list[Batch]:
    """Cut each output of a merged call back into the requests' rows; ValueError if the rows do not add up."""
    total = sum(rows)
    for name, array in outputs.items():
        if np.ndim(array) == 0 or len(array) != total:
            raise ValueError(f"model answered output {name!r} with shape {np.shape(array)} "
                             f"for a merged batch of {total} rows")
    bounds = np.cumsum([0, *rows])
    return [{name: np.asarray(array)[start:stop] for name, array in outputs.items()}
            for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]
