"""Usage reports from the prediction log: requests per second, p50 and p99 latency, errors and 429s, over
time buckets, per model and per caller (API key). Transport-free: the REST API and the admin dashboard call
``usage_report`` and show its ``UsageReport``.

Where the numbers come from: every inference request is a row of the prediction log (``mlgate.predlog.writer``),
including requests refused with 429 and bad input (4xx) on a known model. Shadow requests (copies sent to a
shadow version) are not traffic: they are left out of every count and reported as ``shadow_requests``. Jobs
(``mlgate.jobs``) are counted apart, from the jobs table: submitted in the range, per model, by outcome so far.

"Per key" means per caller as the prediction log names it (``Caller.actor``): ``key:<prefix> (user:<name>)``
for an API key, ``user:<name>`` for an access token (a signed-in user), ``anonymous`` for no credentials.

Counts are SQL ``GROUP BY`` queries (``mlgate.db.queries.usage``). Percentiles are computed here (numpy's
``percentile``, linear interpolation) from the latencies of answered requests (every status but 429, which
never ran). All of them are read when there are at most ``LATENCY_ROWS``; past that, a systematic sample (the
rows whose id is a multiple of ``ceil(answered / LATENCY_ROWS)``: spread over the whole range, no sort) plus
every row of the quiet buckets (those with at most an even share, ``LATENCY_ROWS / buckets``), so at most
twice ``LATENCY_ROWS`` rows. Then the percentiles of the busy buckets, models and keys are estimates from
that sample, and the report says ``sampled: true``. Requests/s and the error counts are always exact.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import numpy as np
from pydantic import BaseModel, Field

from mlgate.db.engine import Database
from mlgate.db.queries.usage import (
    Counts,
    UsageWindow,
    count_by,
    count_series,
    job_counts,
    latency_sample,
    shadow_count,
)
from mlgate.errors import InvalidInput

__all__ = ["ANONYMOUS", "DEFAULT_RANGE_S", "DEFAULT_STEP_S", "LATENCY_ROWS", "MAX_BUCKETS", "MAX_KEYS", "MAX_STEP_S",
           "SERIES", "JobUsageRow", "UsageBucket", "UsageReport", "UsageRow", "UsageSeries", "parse_time",
           "usage_report", "usage_report_from_query"]

MAX_BUCKETS = 1440
"""Most buckets in one report (a day by the minute)."""
MAX_STEP_S = 366 * 86400
"""The widest bucket (larger numbers would overflow the database's integers)."""
LATENCY_ROWS = 50_000
"""Most latencies read for the percentiles of one report."""
MAX_KEYS = 100
"""Most callers listed (those with the most requests); ``keys_truncated`` says when there were more."""
SERIES = 8
"""Models and callers with a requests/s series of their own (those with the most requests)."""
ANONYMOUS = "anonymous"
DEFAULT_RANGE_S = 3600
"""The range of a report when no start is given: the last hour."""
DEFAULT_STEP_S = 60
PRESETS = [("15 min", 900, 10), ("hour", 3600, 60), ("6 hours", 21600, 300), ("day", 86400, 600),
           ("7 days", 7 * 86400, 3600)]
"""The ranges a dashboard offers: (label, seconds, step_s)."""
_KEY_PREFIX_RE = re.compile(r"(?:key:)?(mlg_[0-9a-f]{12})")


class UsageCounts(BaseModel):
    """Counts and latencies of a set of prediction-log rows."""
    requests: int = Field(description="Requests recorded (every status, shadow requests excluded).")
    requests_per_s: float = Field(description="requests / the seconds covered.")
    p50_ms: float | None = Field(description="Median latency of answered requests (not 429), ms; null if none.")
    p99_ms: float | None = Field(description="99th percentile latency of answered requests, ms; null if none.")
    errors_4xx: int = Field(description="Answers with a 4xx status other than 429 (bad input, unknown version...).")
    errors_5xx: int = Field(description="Answers with a 5xx status (model errors, not ready, timeouts).")
    rate_limited: int = Field(description="Requests refused with 429 (rate limit or quota).")


class UsageBucket(UsageCounts):
    """The counts of one time bucket of the report."""
    start: datetime = Field(description="The bucket's first instant (UTC); it lasts step_s (the last one may be "
                            "cut short by the report's end).")


class UsageRow(UsageCounts):
    """The counts of one model or caller (or ``all``)."""
    name: str = Field(description="The model, or the caller (`key:<prefix> (user:<name>)`, `user:<name>`, "
                      "`anonymous`); `all` for the totals.")


class UsageSeries(BaseModel):
    """A model's or caller's requests per second over the report's buckets."""
    name: str = Field(description="The model or the caller.")
    requests_per_s: list[float] = Field(description="Requests per second in each bucket (the buckets' order).")


class JobUsageRow(BaseModel):
    """One model's jobs submitted in the report's range (``mlgate.jobs``), by how they ended so far."""
    name: str = Field(description="The model, or `all` for the totals.")
    submitted: int = Field(description="Jobs submitted (created) in the range.")
    succeeded: int = Field(description="Of those, succeeded (also when their result has expired since).")
    failed: int = Field(description="Of those, failed (error, timeout).")
    cancelled: int = Field(description="Of those, cancelled.")
    pending: int = Field(description="Of those, still queued or running.")


class UsageReport(BaseModel):
    """A usage report: ``buckets`` over time, ``totals`` over the range, and one row per model and per caller."""

    start: datetime
    end: datetime
    step_s: int
    model: str | None
    key: str | None
    buckets: list[UsageBucket]
    totals: UsageRow
    models: list[UsageRow]
    keys: list[UsageRow]
    keys_truncated: bool = Field(description=f"More than {MAX_KEYS} callers: only those with the most requests.")
    model_series: list[UsageSeries] = Field(description=f"Requests/s per bucket of the {SERIES} busiest models.")
    key_series: list[UsageSeries] = Field(description=f"Requests/s per bucket of the {SERIES} busiest callers.")
    shadow_requests: int
    jobs: list[JobUsageRow] = Field(description="Jobs submitted in the range per model, by outcome (a job's "
                                    "run is also a request in the counts above, under its submitter).")
    job_totals: JobUsageRow
    sampled: bool = Field(description="Some percentiles are estimates from a sample of the latencies (the counts "
                          "are exact).")
    latencies_read: int

    def presets(self, now: datetime | None = None) -> list[tuple[str, datetime, datetime, int]]:
        """``(label, start, end, step_s)`` of the usual ranges up to ``now`` (the next whole minute), for links."""
        end = (now or datetime.now(UTC)).replace(second=0, microsecond=0) + timedelta(minutes=1)
        return [(label, end - timedelta(seconds=span), end, step) for label, span, step in PRESETS]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _window(start: datetime, end: datetime, step_s: int, model: str | None, key: str | None) -> UsageWindow:
    start, end = _utc(start).replace(microsecond=0), _utc(end)
    if end <= start:
        raise InvalidInput("'end' must be after 'start'", field="end")
    if not 1 <= step_s <= MAX_STEP_S:
        raise InvalidInput(f"'step_s' must be 1 to {MAX_STEP_S} seconds (a year)", field="step_s")
    buckets = math.ceil((end - start).total_seconds() / step_s)
    if buckets > MAX_BUCKETS:
        raise InvalidInput(f"{buckets} buckets of {step_s} s between start and end; at most {MAX_BUCKETS}: "
                           "choose a larger step_s or a shorter range", field="step_s")
    if model is not None and not 0 < len(model) <= 128:
        raise InvalidInput("'model' must be 1 to 128 characters", field="model")
    if key is not None and not 0 < len(key) <= 256:
        raise InvalidInput("'key' must be 1 to 256 characters", field="key")
    if key == ANONYMOUS:
        return UsageWindow(start, end, step_s, model, caller_null=True)
    prefix = _KEY_PREFIX_RE.fullmatch(key) if key is not None else None
    if prefix is not None:
        return UsageWindow(start, end, step_s, model, caller_key=prefix.group(1))
    return UsageWindow(start, end, step_s, model, caller=key)


def _percentiles(latencies: list[float]) -> tuple[float | None, float | None]:
    if not latencies:
        return None, None
    p50, p99 = np.percentile(np.asarray(latencies, dtype=np.float64), [50, 99])
    return round(float(p50), 3), round(float(p99), 3)


def _counts(c: Counts | None, seconds: float, latencies: list[float], **extra: object) -> dict[str, object]:
    p50, p99 = _percentiles(latencies)
    requests = c.requests if c else 0
    return extra | {"requests": requests, "requests_per_s": round(requests / seconds, 6) if seconds > 0 else 0.0,
            "p50_ms": p50, "p99_ms": p99, "errors_4xx": c.errors_4xx if c else 0,
            "errors_5xx": c.errors_5xx if c else 0, "rate_limited": c.rate_limited if c else 0}


def _sum(groups: Iterable[Counts]) -> Counts:
    total = Counts("all", 0, 0, 0, 0)
    for c in groups:
        total = Counts("all", total.requests + c.requests, total.errors_4xx + c.errors_4xx,
                       total.errors_5xx + c.errors_5xx, total.rate_limited + c.rate_limited)
    return total


async def _series(database: Database, window: UsageWindow, by: str, names: list[str | None],
                  durations: list[float]) -> list[UsageSeries]:
    if not names:
        return []
    counts = {(name, bucket): n for bucket, name, n in await count_series(database, window, by, names)}
    return [UsageSeries(name=name or ANONYMOUS,
                        requests_per_s=[round(counts.get((name, i), 0) / d, 6) if d > 0 else 0.0
                                        for i, d in enumerate(durations)])
            for name in names]


async def usage_report(database: Database, *, start: datetime, end: datetime, step_s: int,
                       model: str | None = None, key: str | None = None,
                       latency_rows: int = LATENCY_ROWS) -> UsageReport:
    """The usage of ``[start, end)`` in buckets of ``step_s`` seconds, for one ``model`` and one caller
    ``key`` when given (else all).

    ``start`` and ``end`` are taken as UTC when naive; ``start`` is moved down to a whole second. ``key`` is a
    caller as the log names it, ``anonymous``, or an API key's prefix (``mlg_<12 hex>`` or ``key:mlg_...``:
    that key whoever its user). Rates are per second of each bucket (the last one: up to ``end``).
    ``latency_rows`` bounds the latencies read for the percentiles (see the module's docstring).
    Raises InvalidInput (400, with ``field``) when ``end`` is not after ``start``, ``step_s`` is not 1 to
    ``MAX_STEP_S``, or the range holds more than ``MAX_BUCKETS`` buckets; DatabaseUnavailable (503) when the
    database cannot be read.
    """
    window = _window(start, end, step_s, model, key)
    n_buckets = math.ceil((window.end - window.start).total_seconds() / step_s)
    per_bucket = max(1, latency_rows // n_buckets)
    by_bucket = {int(c.group): c for c in await count_by(database, window, "bucket")}
    by_model = await count_by(database, window, "model")
    by_caller = await count_by(database, window, "caller", limit=MAX_KEYS + 1)
    shadows = await shadow_count(database, window)
    answered = {b: c.requests - c.rate_limited for b, c in by_bucket.items()}
    every = max(1, math.ceil(sum(answered.values()) / latency_rows))
    # Buckets of at most an even share are read whole: a quiet bucket keeps all its latencies.
    whole = sorted(b for b, n in answered.items() if n <= per_bucket) if every > 1 else []
    sample = await latency_sample(database, window, every=every, whole=whole)

    bucket_lat: dict[int, list[float]] = defaultdict(list)
    model_lat: dict[str, list[float]] = defaultdict(list)
    caller_lat: dict[str, list[float]] = defaultdict(list)
    for bucket, name, caller, latency in sample:
        bucket_lat[bucket].append(latency)
        model_lat[name].append(latency)
        caller_lat[caller or ANONYMOUS].append(latency)
    sampled = any(c.requests - c.rate_limited > len(bucket_lat.get(b, ())) for b, c in by_bucket.items())

    seconds = (window.end - window.start).total_seconds()
    buckets, durations = [], []
    for i in range(n_buckets):
        b_start = window.start + timedelta(seconds=i * step_s)
        b_seconds = min(float(step_s), (window.end - b_start).total_seconds())  # no datetime past the end
        durations.append(b_seconds)
        buckets.append(UsageBucket.model_validate(
            _counts(by_bucket.get(i), b_seconds, bucket_lat.get(i, []), start=b_start)))
    totals = UsageRow.model_validate(
        _counts(_sum(by_bucket.values()), seconds, [x for _, _, _, x in sample], name="all"))
    models = [UsageRow.model_validate(_counts(c, seconds, model_lat.get(c.group, []), name=c.group))
              for c in sorted(by_model, key=lambda c: (-c.requests, c.group))]
    keys = [UsageRow.model_validate(_counts(c, seconds, caller_lat.get(c.group or ANONYMOUS, []),
                                            name=c.group or ANONYMOUS))
            for c in by_caller[:MAX_KEYS]]
    model_series = await _series(database, window, "model", [m.name for m in models[:SERIES]], durations)
    key_series = await _series(database, window, "caller", [c.group for c in by_caller[:SERIES]], durations)
    jobs = [JobUsageRow(name=j.model, submitted=j.submitted, succeeded=j.succeeded, failed=j.failed,
                        cancelled=j.cancelled, pending=j.pending) for j in await job_counts(database, window)]
    job_totals = JobUsageRow(name="all", **{f: sum(getattr(j, f) for j in jobs)
                                            for f in ("submitted", "succeeded", "failed", "cancelled", "pending")})
    return UsageReport(start=window.start, end=window.end, step_s=step_s, model=model, key=key, buckets=buckets,
                       totals=totals, models=models, keys=keys, keys_truncated=len(by_caller) > MAX_KEYS,
                       model_series=model_series, key_series=key_series,
                       shadow_requests=shadows, jobs=jobs, job_totals=job_totals, sampled=sampled,
                       latencies_read=len(sample))


def parse_time(value: str, field: str) -> datetime:
    """An ISO 8601 time (``2026-11-21T15:00:00Z``; naive means UTC). InvalidInput (400, ``field``) otherwise."""
    try:
        return _utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except (ValueError, OverflowError):  # OverflowError: in UTC, the time is past year 9999
        raise InvalidInput(f"{field} {value[:64]!r} is not an ISO 8601 time, e.g. 2026-11-21T15:00:00Z",
                           field=field) from None


async def usage_report_from_query(database: Database, *, start: str | None = None, end: str | None = None,
                                  step_s: int | None = None, model: str | None = None, key: str | None = None,
                                  now: datetime | None = None) -> UsageReport:
    """``usage_report`` from a query string's values (empty means not given): ``end`` defaults to now,
    ``start`` to ``DEFAULT_RANGE_S`` before ``end``, ``step_s`` to ``DEFAULT_STEP_S``. Same errors, plus
    InvalidInput for a time that is not ISO 8601."""
    # Now, on the next whole second: the default hour is exactly 60 buckets.
    next_second = (now or datetime.now(UTC)).replace(microsecond=0) + timedelta(seconds=1)
    end_at = parse_time(end, "end") if end else next_second
    start_at = parse_time(start, "start") if start else end_at - timedelta(seconds=DEFAULT_RANGE_S)
    step = DEFAULT_STEP_S if step_s is None else step_s
    return await usage_report(database, start=start_at, end=end_at, step_s=step,
                              model=model or None, key=key or None)
