"""Usage queries over the prediction log: request counts per time bucket, model or caller (SQL ``GROUP BY``),
and a bounded sample of latencies for percentiles.

The same statements run on SQLite and PostgreSQL: the only dialect-specific piece is ``epoch_s``, a row's
timestamp in whole Unix seconds, compiled per dialect (``strftime('%s', at)`` on SQLite, ``EXTRACT(EPOCH
FROM at)`` on PostgreSQL). A row's bucket is ``(epoch_s(at) - start) // step_s``, an integer, so bucket
edges are exact on both. Shadow rows are left out of every count but ``shadow_count``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, and_, case, func, literal, or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from mlgate.db.engine import Database
from mlgate.db.tables.jobs import JobRecord
from mlgate.db.tables.predlog import PredictionRecord
from mlgate.errors import DatabaseUnavailable

__all__ = ["Counts", "JobCounts", "UsageWindow", "count_by", "count_series", "job_counts", "latency_sample",
           "shadow_count"]


class epoch_s(FunctionElement[int]):  # noqa: N801 - a SQL function, named like one
    """A timestamp column as whole seconds since 1970-01-01 UTC (BIGINT)."""

    type = BigInteger()
    inherit_cache = True
    name = "epoch_s"


@compiles(epoch_s)
def _epoch_default(element: epoch_s, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})) AS BIGINT)"


@compiles(epoch_s, "sqlite")
def _epoch_sqlite(element: epoch_s, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLAlchemy stores SQLite datetimes as UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'.
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@dataclass(frozen=True, slots=True)
class UsageWindow:
    """What a usage query reads: ``[start, end)`` (``start`` on a whole second), buckets of ``step_s`` seconds,
    optionally one model and one caller (``caller_null``: the anonymous caller, a NULL ``caller``;
    ``caller_key``: an API key's prefix, whatever its user)."""

    start: datetime
    end: datetime
    step_s: int
    model: str | None = None
    caller: str | None = None
    caller_null: bool = False
    caller_key: str | None = None

    def bucket(self) -> ColumnElement[int]:
        """The bucket index of each row: whole ``step_s`` steps since the window's start."""
        t = PredictionRecord
        start = int(self.start.timestamp())
        return ((epoch_s(t.at) - literal(start, BigInteger())) // literal(self.step_s, BigInteger())).label("bucket")

    def where(self, stmt: Select[Any], *, shadow: bool = False) -> Select[Any]:
        """``stmt`` restricted to the window's rows (time range, shadow or not, model, caller)."""
        t = PredictionRecord
        stmt = stmt.select_from(t).where(t.at >= self.start, t.at < self.end, t.shadow.is_(shadow))
        if self.model is not None:
            stmt = stmt.where(t.model == self.model)
        if self.caller_null:
            stmt = stmt.where(t.caller.is_(None))
        elif self.caller_key is not None:
            # The log names a key "key:<prefix> (user:<name>)"; a prefix is hex, so LIKE needs no escaping.
            stmt = stmt.where(t.caller.like(f"key:{self.caller_key} (%"))
        elif self.caller is not None:
            stmt = stmt.where(t.caller == self.caller)
        return stmt


@dataclass(frozen=True, slots=True)
class Counts:
    """One group's counts: every request, 4xx other than 429, 5xx, and 429."""

    group: Any
    requests: int
    errors_4xx: int
    errors_5xx: int
    rate_limited: int


def _count_columns() -> list[ColumnElement[Any]]:
    s = PredictionRecord.status
    return [
        func.count().label("requests"),
        func.coalesce(func.sum(case((and_(s >= 400, s < 500, s != 429), 1), else_=0)), 0).label("e4"),
        func.coalesce(func.sum(case((s >= 500, 1), else_=0)), 0).label("e5"),
        func.coalesce(func.sum(case((s == 429, 1), else_=0)), 0).label("r429"),
    ]


async def _rows(database: Database, stmt: Select[Any]) -> Sequence[Any]:
    try:
        async with database.session() as session:
            rows: Sequence[Any] = (await session.execute(stmt)).all()
    except (DBAPIError, OSError) as exc:
        raise DatabaseUnavailable("the prediction log database cannot be reached; try again shortly") from exc
    return rows


async def count_by(database: Database, window: UsageWindow, by: str, *, limit: int | None = None) -> list[Counts]:
    """Counts grouped by ``by``: ``"bucket"``, ``"model"`` or ``"caller"``; with ``limit``, the groups with
    the most requests first."""
    group: ColumnElement[Any] = window.bucket() if by == "bucket" else getattr(PredictionRecord, by)
    stmt = window.where(select(group, *_count_columns())).group_by(group)
    if limit is not None:
        stmt = stmt.order_by(func.count().desc(), group).limit(limit)
    return [Counts(row[0], int(row[1]), int(row[2]), int(row[3]), int(row[4])) for row in await _rows(database, stmt)]


async def count_series(database: Database, window: UsageWindow, by: str,
                       names: Sequence[str | None]) -> list[tuple[int, str | None, int]]:
    """``(bucket, name, requests)`` for the models (``by="model"``) or callers (``by="caller"``; None: the
    anonymous caller) in ``names``: one ``GROUP BY bucket, <by>``."""
    column = getattr(PredictionRecord, by)
    bucket = window.bucket()
    named = [n for n in names if n is not None]
    chosen = or_(column.in_(named), column.is_(None)) if None in names else column.in_(named)
    stmt = window.where(select(bucket, column, func.count())).where(chosen).group_by(bucket, column)
    return [(int(b), n, int(c)) for b, n, c in await _rows(database, stmt)]


async def shadow_count(database: Database, window: UsageWindow) -> int:
    """Shadow requests (copies of live traffic sent to a shadow version) in the window."""
    rows = await _rows(database, window.where(select(func.count()), shadow=True))
    return int(rows[0][0])


async def latency_sample(database: Database, window: UsageWindow, *, every: int = 1,
                         whole: Sequence[int] = ()) -> list[tuple[int, str, str | None, float]]:
    """``(bucket, model, caller, latency_ms)`` of the requests that were answered (every status but 429): all
    of them with ``every=1``, else those whose id is a multiple of ``every`` (a systematic sample, spread over
    the range; no sort) plus every row of the buckets in ``whole``."""
    t = PredictionRecord
    bucket = window.bucket()
    columns: list[Any] = [bucket, t.model, t.caller, t.latency_ms]
    stmt = window.where(select(*columns)).where(t.status != 429)
    if every > 1:
        sampled = (t.id % literal(every, BigInteger())) == 0
        stmt = stmt.where(or_(sampled, bucket.in_(list(whole))) if whole else sampled)
    return [(int(b), m, c, float(v)) for b, m, c, v in await _rows(database, stmt)]


@dataclass(frozen=True, slots=True)
class JobCounts:
    """One model's jobs submitted in a window, by how they ended so far (``pending``: queued or running)."""

    model: str
    submitted: int
    succeeded: int
    failed: int
    cancelled: int
    pending: int


async def job_counts(database: Database, window: UsageWindow) -> list[JobCounts]:
    """Per model, the jobs (``mlgate.db.tables.jobs``) created in ``[start, end)`` of ``window`` (its model and
    caller too; the anonymous caller has none), by outcome. An ``expired`` job counts as what it was before
    its result was dropped: failed or cancelled by its kept error's code, else succeeded."""
    t = JobRecord
    code = t.error["code"].as_string()
    was_cancelled = or_(t.status == "cancelled", and_(t.status == "expired", code == "cancelled"))
    was_failed = or_(t.status == "failed", and_(t.status == "expired", t.error.is_not(None), code != "cancelled"))
    was_ok = or_(t.status == "succeeded", and_(t.status == "expired", t.error.is_(None)))

    def total(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    stmt = select(t.model, func.count(), total(was_ok), total(was_failed), total(was_cancelled),
                  total(t.status.in_(("queued", "running")))).where(t.created_at >= window.start,
                                                                     t.created_at < window.end)
    if window.model is not None:
        stmt = stmt.where(t.model == window.model)
    if window.caller_null:
        return []
    if window.caller_key is not None:
        stmt = stmt.where(t.actor.like(f"key:{window.caller_key} (%"))
    elif window.caller is not None:
        stmt = stmt.where(t.actor == window.caller)
    rows = await _rows(database, stmt.group_by(t.model).order_by(func.count().desc(), t.model))
    return [JobCounts(m, int(n), int(ok), int(bad), int(cancelled), int(pending))
            for m, n, ok, bad, cancelled, pending in rows]
