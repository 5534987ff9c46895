"""Usage reports: counts, rates and percentiles checked against numbers computed here from the same records
(numpy's percentiles), on SQLite and PostgreSQL; the REST endpoint over real HTTP (admins only, 400s with
``field``); the dashboard partial rendered from a report."""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from mlgate.auth import Role
from mlgate.db.engine import Database
from mlgate.predlog.usage import UsageReport, UsageRow, usage_report
from mlgate.predlog.writer import Prediction, PredictionLog
from mlgate.web.playground import templates
from tests.secure import bearer, secure_app, v2_body

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
KEY_A = "key:mlg_0123456789ab (user:alice)"
KEY_B = "key:mlg_ba9876543210 (user:bob)"
CALLERS = [KEY_A, KEY_B, "user:carol", None]
STATUSES = [200] * 12 + [400, 404, 429, 429, 500, 503]
QUIET = [3.0, 40.0, 7.5]


def _records(n: int, seed: int = 7) -> list[Prediction]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        at = T0 + timedelta(seconds=rng.uniform(-30, 330), microseconds=rng.randrange(1_000_000))
        out.append(Prediction(at=at, model=rng.choice(["iris", "digits", "</script>x"]), version="1",
                              caller=rng.choice(CALLERS), status=rng.choice(STATUSES),
                              latency_ms=round(rng.lognormvariate(2.0, 0.8), 3), batch_size=1, request_id=f"r{i}",
                              shadow=rng.random() < 0.1))
    # Exactly on a bucket's edges: counted in the later bucket, and 'end' is exclusive.
    out.append(Prediction(at=T0 + timedelta(seconds=60), model="iris", version="1", caller=KEY_A, status=200,
                          latency_ms=1.0, batch_size=1))
    out.append(Prediction(at=T0 + timedelta(seconds=300), model="iris", version="1", caller=KEY_A, status=200,
                          latency_ms=1.0, batch_size=1))
    # A quiet minute, after the rest.
    out.extend(Prediction(at=T0 + timedelta(seconds=620 + i), model="iris", version="1", caller=None, status=200,
                          latency_ms=latency, batch_size=1) for i, latency in enumerate(QUIET))
    return out


async def _write(url: str, records: list[Prediction]) -> Database:
    """Write ``records`` through the prediction log into the (migrated) database at ``url``."""
    database = Database(url)
    writer = PredictionLog(database, buffer_size=10_000, batch_size=200, interval_s=0.01, default_sample_rate=0.0)
    writer.start()
    for record in records:
        writer.record(record)
    await writer.close()
    return database


def _expected(records: list[Prediction], name: str, seconds: float) -> dict[str, Any]:
    answered = [r.latency_ms for r in records if r.status != 429]
    p50, p99 = (np.percentile(answered, [50, 99]) if answered else (None, None))
    return {"name": name, "requests": len(records), "requests_per_s": pytest.approx(len(records) / seconds),
            "p50_ms": pytest.approx(p50, abs=1e-3) if p50 is not None else None,
            "p99_ms": pytest.approx(p99, abs=1e-3) if p99 is not None else None,
            "errors_4xx": sum(400 <= r.status < 500 and r.status != 429 for r in records),
            "errors_5xx": sum(r.status >= 500 for r in records), "rate_limited": sum(r.status == 429 for r in records)}


def _row(row: UsageRow) -> dict[str, Any]:
    return row.model_dump()


async def test_report_matches_numbers_computed_from_the_records(database_url: str) -> None:
    records = _records(1500)
    database = await _write(database_url, records)
    start, end, step = T0, T0 + timedelta(seconds=300), 60
    try:
        report = await usage_report(database, start=start, end=end, step_s=step)
        live = [r for r in records if start <= r.at < end and not r.shadow]
        assert report.shadow_requests == sum(start <= r.at < end and r.shadow for r in records) > 0
        assert [b.start for b in report.buckets] == [T0 + timedelta(seconds=60 * i) for i in range(5)]
        for i, bucket in enumerate(report.buckets):
            inside = [r for r in live if T0 + timedelta(seconds=60 * i) <= r.at < T0 + timedelta(seconds=60 * (i + 1))]
            assert {"name": "all", **bucket.model_dump(exclude={"start"})} == _expected(inside, "all", 60)
        assert _row(report.totals) == _expected(live, "all", 300)
        by_model: dict[str, list[Prediction]] = defaultdict(list)
        by_caller: dict[str, list[Prediction]] = defaultdict(list)
        for r in live:
            by_model[r.model].append(r)
            by_caller[r.caller or "anonymous"].append(r)
        assert {m.name: _row(m) for m in report.models} == {n: _expected(rs, n, 300) for n, rs in by_model.items()}
        assert {k.name: _row(k) for k in report.keys} == {n: _expected(rs, n, 300) for n, rs in by_caller.items()}
        assert [m.requests for m in report.models] == sorted((m.requests for m in report.models), reverse=True)
        # A requests/s series per model and per caller (all of them here: fewer than SERIES).
        def per_bucket(rows: list[Prediction]) -> list[Any]:
            edges = [T0 + timedelta(seconds=60 * i) for i in range(6)]
            return [pytest.approx(sum(edges[i] <= r.at < edges[i + 1] for r in rows) / 60) for i in range(5)]

        assert {s.name: s.requests_per_s for s in report.model_series} == {
            n: per_bucket(rs) for n, rs in by_model.items()}
        assert {s.name: s.requests_per_s for s in report.key_series} == {
            n: per_bucket(rs) for n, rs in by_caller.items()}
        assert not report.sampled and report.latencies_read == sum(r.status != 429 for r in live)

        # Filters: one model; the anonymous caller; a key by its prefix; a caller as the log names it.
        only = await usage_report(database, start=start, end=end, step_s=step, model="</script>x")
        assert _row(only.totals) == _expected(by_model["</script>x"], "all", 300)
        assert [m.name for m in only.models] == ["</script>x"]
        anonymous = await usage_report(database, start=start, end=end, step_s=step, key="anonymous")
        assert _row(anonymous.totals) == _expected(by_caller["anonymous"], "all", 300)
        for key in ("mlg_0123456789ab", "key:mlg_0123456789ab", KEY_A):
            by_key = await usage_report(database, start=start, end=end, step_s=step, key=key)
            assert _row(by_key.totals) == _expected(by_caller[KEY_A], "all", 300)
            assert [k.name for k in by_key.keys] == [KEY_A]
        both = await usage_report(database, start=start, end=end, step_s=step, model="iris", key="user:carol")
        assert both.totals.requests == sum(r.model == "iris" and r.caller == "user:carol" for r in live)

        # A range that does not fall on the step: the last bucket is cut short and its rate uses its length.
        odd = await usage_report(database, start=start, end=start + timedelta(seconds=150), step_s=step)
        assert len(odd.buckets) == 3
        last = [r for r in live if T0 + timedelta(seconds=120) <= r.at < T0 + timedelta(seconds=150)]
        assert odd.buckets[2].requests == len(last)
        assert odd.buckets[2].requests_per_s == pytest.approx(len(last) / 30)

        # Percentiles from a bounded sample: counts stay exact, the report says it sampled, every busy minute
        # still has percentiles, and the quiet minute (at most an even share) is read whole.
        sampled = await usage_report(database, start=start, end=start + timedelta(seconds=660), step_s=step,
                                     latency_rows=100)
        assert sampled.sampled and 0 < sampled.latencies_read <= 200
        assert [b.requests for b in sampled.buckets[:5]] == [b.requests for b in report.buckets]
        assert sampled.totals.requests == sum(
            start <= r.at < start + timedelta(seconds=660) and not r.shadow for r in records)
        assert all(b.p50_ms is not None for b in sampled.buckets[:5])
        quiet = sampled.buckets[10]
        assert quiet.requests == 3
        assert (quiet.p50_ms, quiet.p99_ms) == (pytest.approx(np.percentile(QUIET, 50)),
                                                pytest.approx(np.percentile(QUIET, 99)))
        empty = await usage_report(database, start=T0 - timedelta(days=1), end=T0 - timedelta(hours=23), step_s=600)
        assert empty.totals.requests == 0 and empty.totals.p50_ms is None and empty.models == [] and empty.keys == []
        assert [b.requests for b in empty.buckets] == [0] * 6
    finally:
        await database.dispose()


async def test_usage_endpoint_is_for_admins_and_counts_real_requests(examples_repo: Path, database_url: str) -> None:
    tiers = {"default": {"requests": "", "rows": ""}, "small": {"requests": "3/minute"}}
    async with secure_app(examples_repo, database_url=database_url, rate_limit_tiers=tiers,
                          prediction_log_interval_s=0.05) as sec:
        await sec.user("root", Role.ADMIN)
        await sec.user("alice")
        admin = bearer(await sec.key("root"))
        alice_key = await sec.key("alice", tier="small")
        alice = bearer(alice_key)
        before = datetime.now(UTC) - timedelta(seconds=1)
        infer = "/v2/models/breast-cancer/infer"
        codes = [(await sec.client.post(infer, json=v2_body(), headers=alice)).status_code for _ in range(2)]
        bad = {"inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP64", "data": [0, 0]}]}
        codes.append((await sec.client.post(infer, json=bad, headers=alice)).status_code)
        codes.append((await sec.client.post(infer, json=v2_body(), headers=alice)).status_code)
        assert codes == [200, 200, 400, 429]

        assert (await sec.client.get("/api/v1/usage")).status_code == 401
        assert (await sec.client.get("/api/v1/usage", headers=alice)).status_code == 403
        fresh = bearer(await sec.key("alice", name="second"))
        forbidden = await sec.client.get("/api/v1/usage", headers=fresh)
        assert forbidden.status_code == 403 and forbidden.json()["code"] == "forbidden"

        params = {"start": before.isoformat(), "step_s": "10", "model": "breast-cancer"}
        with anyio.fail_after(10):
            while True:
                response = await sec.client.get("/api/v1/usage", params=params, headers=admin)
                assert response.status_code == 200, response.text
                body = response.json()
                if body["totals"]["requests"] >= 4:
                    break
                await anyio.sleep(0.05)
        report = UsageReport.model_validate(body)
        prefix = "_".join(alice_key.split("_")[:2])
        assert (report.totals.requests, report.totals.errors_4xx, report.totals.rate_limited) == (4, 1, 1)
        assert [(k.name, k.requests) for k in report.keys] == [(f"key:{prefix} (user:alice)", 4)]
        assert report.totals.p50_ms is not None and report.totals.p50_ms > 0
        by_prefix = await sec.client.get("/api/v1/usage", params={**params, "key": prefix}, headers=admin)
        assert by_prefix.json()["totals"]["requests"] == 4
        # Defaults: the last hour by the minute.
        default = (await sec.client.get("/api/v1/usage", headers=admin)).json()
        assert default["step_s"] == 60 and len(default["buckets"]) == 60 and default["totals"]["requests"] >= 4

        async def error(**query: str) -> tuple[int, str | None]:
            response = await sec.client.get("/api/v1/usage", params=query, headers=admin)
            return response.status_code, response.json()["field"]

        now = datetime.now(UTC)
        assert await error(start=now.isoformat(), end=(now - timedelta(hours=1)).isoformat()) == (400, "end")
        assert await error(step_s="0") == (400, "step_s")
        assert await error(step_s="1") == (400, "step_s")  # 3600 buckets > 1440
        assert await error(step_s=str(10**15)) == (400, "step_s")  # not an overflow in the database (500)
        assert await error(step_s=str(10**30)) == (400, "step_s")
        assert await error(start="0001-01-01T00:00:00", step_s=str(366 * 86400)) == (400, "step_s")  # buckets
        far = await sec.client.get("/api/v1/usage", params={"start": "1970-01-01T00:00:00Z", "step_s": 366 * 86400},
                                   headers=admin)
        assert far.status_code == 200 and far.json()["totals"]["requests"] >= 4
        assert await error(step_s="soon") == (400, "query.step_s")  # FastAPI's own check of the type
        assert await error(start="yesterday") == (400, "start")
        assert await error(end="2026-13-01T00:00:00") == (400, "end")
        assert await error(end="9999-12-31T23:59:59-05:00") == (400, "end")
        year_9999 = {"start": "9999-01-01T00:00:00", "end": "9999-12-31T00:00:00", "step_s": 366 * 86400}
        last = await sec.client.get("/api/v1/usage", params=year_9999, headers=admin)
        assert last.status_code == 200 and last.json()["totals"]["requests"] == 0


async def test_dashboard_panel_renders_the_report_safely(sqlite_url: str) -> None:
    records = _records(300)
    database = await _write(sqlite_url, records)
    try:
        report = await usage_report(database, start=T0, end=T0 + timedelta(seconds=300), step_s=60)
    finally:
        await database.dispose()
    html = templates.env.get_template("dashboard_panel.html").render(report=report, static="/ui/static")
    # The first </script> after the data tag ends it: a model named "</script>x" must not end it early.
    data = html.split('<script type="application/json" id="usage-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(data) == report.model_dump(mode="json")
    assert "<script>x" not in html and "&lt;/script&gt;x" in html
    for src in ("/ui/static/vendor/uplot/uPlot.iife.min.js", "/ui/static/dashboard.js",
                "/ui/static/vendor/uplot/uPlot.min.css"):
        assert src in html
    models = html.split('id="usage-models"', 1)[1].split("</table>", 1)[0]
    for row in report.models:
        cells = re.search(rf'<th scope="row">{re.escape(escape(row.name))}</th><td class="n">(\d+)</td>', models)
        assert cells is not None and int(cells.group(1)) == row.requests
    totals = re.search(r'<tr class="totals"><th scope="row">all</th><td class="n">(\d+)</td>', models)
    assert totals is not None
    assert int(totals.group(1)) == report.totals.requests == sum(m.requests for m in report.models)
    assert f'id="usage-total-requests">{report.totals.requests}<' in html
