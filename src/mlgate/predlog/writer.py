"""The prediction log writer: records of served requests, written to the database in batches, off the
request path.

``record()`` never waits: it appends to a bounded buffer (``prediction_log_buffer`` records) and returns.
One writer task inserts up to ``prediction_log_batch`` records per statement, at least every
``prediction_log_interval_s``, and at once when a batch is ready or the buffer is full (so a buffer smaller
than a batch is flushed early rather than dropped). The batch being written leaves the buffer, so records keep
coming in during the insert (a failed insert puts it back in front: at most one batch over the bound). Only
when the buffer is full while the database is slow or down is a record dropped and counted
(``mlgate_prediction_log_dropped_total`` in ``/metrics``). While the database is down the writer keeps the
records and retries with back-off, so nothing within the buffer is lost; ``close()`` writes what is left
(clean shutdown).
Inputs and outputs are kept for a per-model share of requests (``sample_rate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import numpy as np
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError

from mlgate.db.engine import Database
from mlgate.db.tables.predlog import PredictionRecord

__all__ = ["PredictionLog", "Prediction", "tensors_to_json"]

log = structlog.get_logger("mlgate.predlog.writer")


@dataclass(slots=True)
class Prediction:
    """One served request, as the data plane hands it over (tensors still numpy, converted by the writer)."""

    at: datetime
    model: str
    version: str | None
    caller: str | None
    status: int
    latency_ms: float
    batch_size: int | None
    request_id: str | None = None
    shadow: bool = False
    inputs: Mapping[str, np.ndarray] | None = None
    outputs: Mapping[str, np.ndarray] | None = None
    error_code: str | None = None
    """The error's ``code`` when the request was answered with one (``invalid_input``, ``rate_limited``...)."""
    error_message: str | None = None
    """The error's message as the caller got it (cut to ``ERROR_MESSAGE_CHARS``)."""


ERROR_MESSAGE_CHARS = 1024
"""The longest error message kept (the column's size)."""


def tensors_to_json(tensors: Mapping[str, np.ndarray] | None) -> dict[str, Any] | None:
    """``{name: nested list}``; BYTES become text (UTF-8, undecodable bytes replaced)."""
    if tensors is None:
        return None
    out: dict[str, Any] = {}
    for name, array in tensors.items():
        value = np.asarray(array)
        if value.dtype == object:
            flat = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in value.reshape(-1)]
            out[name] = np.array(flat, dtype=object).reshape(value.shape).tolist()
        else:
            out[name] = value.tolist()
    return out


_INSERT = insert(PredictionRecord)  # executed on a Connection: a Core executemany


def _row(p: Prediction) -> dict[str, Any]:
    return {"at": p.at, "model": p.model, "version": p.version, "caller": p.caller, "status": p.status,
            "latency_ms": p.latency_ms, "batch_size": p.batch_size, "request_id": p.request_id,
            "shadow": p.shadow, "inputs": tensors_to_json(p.inputs), "outputs": tensors_to_json(p.outputs),
            "error_code": p.error_code,
            "error_message": p.error_message[:ERROR_MESSAGE_CHARS] if p.error_message is not None else None}


class PredictionLog:
    """The buffered prediction-log writer: ``record`` never blocks; a background task writes records in
    batches of ``batch_size`` every ``interval_s`` seconds (or sooner when a batch is full). ``buffer_size``
    records at most wait; tensors are kept for ``sample_rates`` (per model) of requests.
    """
    def __init__(self, database: Database, *, buffer_size: int, batch_size: int, interval_s: float,
                 default_sample_rate: float, metrics: CollectorRegistry | None = None) -> None:
        self.database = database
        self.buffer_size = buffer_size
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.default_sample_rate = default_sample_rate
        self.sample_rates: dict[str, float] = {}
        """Per-model share of requests whose tensors are logged (set from the registry's catalog)."""
        self._buffer: deque[Prediction] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped = Counter("mlgate_prediction_log_dropped", "Prediction log records dropped: buffer full.",
                               registry=metrics)
        self.written = Counter("mlgate_prediction_log_written", "Prediction log records written.",
                               registry=metrics)
        self.pending = Gauge("mlgate_prediction_log_pending", "Prediction log records waiting to be written.",
                             registry=metrics)
        self._in_flight = 0
        self.pending.set_function(lambda: len(self._buffer) + self._in_flight)

    def start(self) -> None:
        """Start the background writer task (in the running event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="prediction-log-writer")

    def wants_tensors(self, model: str) -> bool:
        """Whether this request's inputs and outputs are to be kept (the model's sample rate)."""
        rate = self.sample_rates.get(model, self.default_sample_rate)
        return rate >= 1.0 or (rate > 0.0 and random.random() < rate)  # noqa: S311 - sampling, not security

    def record(self, prediction: Prediction) -> None:
        """Queue one record; never blocks. Dropped (and counted) when the buffer is full."""
        if len(self._buffer) >= self.buffer_size or self._closing:
            self.dropped.inc()
            return
        self._buffer.append(prediction)
        if len(self._buffer) >= min(self.batch_size, self.buffer_size):
            self._wake.set()

    async def _run(self) -> None:
        backoff = 0.1
        while not (self._closing and not self._buffer):
            if not self._buffer:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval_s)
                continue
            if len(self._buffer) < min(self.batch_size, self.buffer_size) and not self._closing:
                # Give a partial batch the interval to fill up.
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval_s)
            try:
                await self._write_batch()
                backoff = 0.1
            except (DBAPIError, OSError) as exc:
                log.warning("prediction log: database unavailable, will retry", pending=len(self._buffer),
                            error=f"{type(exc).__name__}: {str(exc)[:200]}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            except Exception:  # noqa: BLE001 - a record the database refuses must not stop the writer
                log.exception("prediction log: batch refused by the database, dropped")
                dropped = min(self.batch_size, len(self._buffer))
                for _ in range(dropped):
                    self._buffer.popleft()
                self.dropped.inc(dropped)

    async def _write_batch(self) -> None:
        batch = [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]
        self._in_flight = len(batch)
        try:
            rows = await anyio.to_thread.run_sync(lambda: [_row(p) for p in batch])
            # A Core executemany on the table: the ORM's bulk insert spends more CPU per record (benchmarks/RESULTS.md).
            async with self.database.engine.begin() as connection:
                await connection.execute(_INSERT, rows)
        except BaseException:
            self._buffer.extendleft(reversed(batch))  # kept, in order, for the next try
            raise
        finally:
            self._in_flight = 0
        self.written.inc(len(batch))

    async def close(self, timeout_s: float = 10.0) -> None:
        """Write every buffered record (at most ``timeout_s``), then stop the writer."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            # The writer ends by itself once the buffer is empty; cancel it only past the timeout.
            done, _ = await asyncio.wait([self._task], timeout=timeout_s)
            if not done:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._buffer:
            log.error("prediction log: records not written at shutdown", lost=len(self._buffer))
