"""Time of ``mlgate.predlog.usage.usage_report`` on a prediction log of N rows, on SQLite and/or PostgreSQL.

Usage: python benchmarks/usage_report.py DATABASE_URL [rows] [hours]
Fills the (migrated) database's prediction log with ``rows`` records spread evenly over the last ``hours``
(default 500000 over 24), 5 models, 50 callers, 3% errors, 1% 429s, then times three reports: the last hour by
the minute, the whole range in 10-minute buckets, and one model over the whole range. Prints one JSON line per
report: seconds (best of 3), rows in range, latencies read, sampled. Use an empty database: rows are added.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from mlgate.db.engine import Database
from mlgate.db.migrate import upgrade
from mlgate.db.tables.predlog import PredictionRecord
from mlgate.predlog.usage import usage_report


async def fill(database: Database, rows: int, start: datetime, span_s: float) -> None:
    rng = random.Random(0)
    batch: list[dict[str, object]] = []
    for i in range(rows):
        status = 429 if rng.random() < 0.01 else (500 if rng.random() < 0.01 else (400 if rng.random() < 0.02 else 200))
        batch.append({"at": start + timedelta(seconds=span_s * i / rows), "model": f"model-{i % 5}", "version": "1",
                      "caller": f"key:mlg_{i % 50:012x} (user:u{i % 50})", "status": status,
                      "latency_ms": rng.lognormvariate(2, 0.7), "batch_size": 1, "shadow": False})
        if len(batch) == 5000:
            async with database.session() as session:
                await session.execute(insert(PredictionRecord), batch)
            batch = []
    if batch:
        async with database.session() as session:
            await session.execute(insert(PredictionRecord), batch)


async def main(url: str, rows: int, hours: float) -> None:
    await asyncio.to_thread(upgrade, url)
    database = Database(url)
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(hours=hours)
    began = time.perf_counter()
    await fill(database, rows, start, hours * 3600)
    print(json.dumps({"filled_rows": rows, "seconds": round(time.perf_counter() - began, 1)}), flush=True)
    cases = {"last hour by the minute": {"start": end - timedelta(hours=1), "end": end, "step_s": 60},
             "whole range, 10 min": {"start": start, "end": end, "step_s": 600},
             "one model, whole range": {"start": start, "end": end, "step_s": 600, "model": "model-3"}}
    for name, args in cases.items():
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            report = await usage_report(database, **args)  # type: ignore[arg-type]
            best = min(best, time.perf_counter() - t0)
        print(json.dumps({"report": name, "backend": database.url.get_backend_name(), "seconds": round(best, 3),
                          "requests": report.totals.requests, "latencies_read": report.latencies_read,
                          "sampled": report.sampled}), flush=True)
    await database.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 500_000,
                     float(sys.argv[3]) if len(sys.argv) > 3 else 24.0))
