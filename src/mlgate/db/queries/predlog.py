"""Reading the prediction log: filters (model, version, status, time range, shadow, caller, request id, error
code) and keyset pagination.

Pages go newest first; the cursor is the id of the last record returned, so a page is stable while new
records arrive (no offset drift). Export walks oldest first in pages of ``page`` rows. The anonymous caller,
stored as NULL, is shown and filtered as ``anonymous`` (``ANONYMOUS``), the name the usage report gives it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import DBAPIError

from mlgate.db.engine import Database
from mlgate.db.tables.predlog import PredictionRecord
from mlgate.errors import DatabaseUnavailable

__all__ = ["ANONYMOUS", "PredictionFilter", "export_predictions", "query_predictions", "record_json"]

ANONYMOUS = "anonymous"
"""How the log names a caller without credentials (its ``caller`` column is NULL)."""


@dataclass(frozen=True, slots=True)
class PredictionFilter:
    """The filters of a prediction-log query (every field optional; all given ones must match)."""
    model: str | None = None
    version: str | None = None
    status: int | None = None
    status_class: int | None = None
    """1-5: 2 for every 2xx, 4 for every 4xx, ..."""
    since: datetime | None = None
    until: datetime | None = None
    shadow: bool | None = None
    caller: str | None = None
    """``key:<prefix> (user:<name>)``, ``user:<name>``, or ``anonymous``."""
    request_id: str | None = None
    error_code: str | None = None

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        """``stmt`` with this filter's conditions on the prediction-log table."""
        t = PredictionRecord
        if self.model is not None:
            stmt = stmt.where(t.model == self.model)
        if self.version is not None:
            stmt = stmt.where(t.version == self.version)
        if self.status is not None:
            stmt = stmt.where(t.status == self.status)
        if self.status_class is not None:
            stmt = stmt.where(t.status >= self.status_class * 100, t.status < self.status_class * 100 + 100)
        if self.since is not None:
            stmt = stmt.where(t.at >= self.since)
        if self.until is not None:
            stmt = stmt.where(t.at < self.until)
        if self.shadow is not None:
            stmt = stmt.where(t.shadow == self.shadow)
        if self.caller is not None:
            stmt = stmt.where(t.caller.is_(None) if self.caller == ANONYMOUS else t.caller == self.caller)
        if self.request_id is not None:
            stmt = stmt.where(t.request_id == self.request_id)
        if self.error_code is not None:
            stmt = stmt.where(t.error_code == self.error_code)
        return stmt


def record_json(r: PredictionRecord) -> dict[str, Any]:
    """One record as the REST API answers it (``at`` ISO 8601 UTC, ``latency_ms`` in ms)."""
    return {"id": r.id, "at": r.at.isoformat(), "model": r.model, "version": r.version,
            "caller": r.caller if r.caller is not None else ANONYMOUS, "status": r.status,
            "error_code": r.error_code, "error_message": r.error_message, "latency_ms": r.latency_ms,
            "batch_size": r.batch_size, "shadow": r.shadow, "request_id": r.request_id, "inputs": r.inputs,
            "outputs": r.outputs}


async def query_predictions(database: Database, where: PredictionFilter, *, limit: int,
                            before_id: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """One page, newest first, and the cursor of the next page (None at the end)."""
    stmt = where.apply(select(PredictionRecord))
    if before_id is not None:
        stmt = stmt.where(PredictionRecord.id < before_id)
    stmt = stmt.order_by(PredictionRecord.id.desc()).limit(limit + 1)
    try:
        async with database.session() as session:
            rows = list((await session.execute(stmt)).scalars())
    except (DBAPIError, OSError) as exc:
        raise DatabaseUnavailable("the prediction log database cannot be reached; try again shortly") from exc
    more = len(rows) > limit
    rows = rows[:limit]
    return [record_json(r) for r in rows], (rows[-1].id if more and rows else None)


async def export_predictions(database: Database, where: PredictionFilter, *,
                             page: int = 1000) -> AsyncIterator[list[dict[str, Any]]]:
    """Every matching record, oldest first, a page at a time."""
    after = 0
    while True:
        stmt = where.apply(select(PredictionRecord)).where(PredictionRecord.id > after)
        stmt = stmt.order_by(PredictionRecord.id).limit(page)
        async with database.session() as session:
            rows = list((await session.execute(stmt)).scalars())
        if not rows:
            return
        yield [record_json(r) for r in rows]
        after = rows[-1].id
