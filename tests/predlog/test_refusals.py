"""Refusals reach the prediction log: 429s from the rate limiter (before the model is served) and bad input
on a known model are recorded with their status, model and caller; unknown model names and callers that
are not allowed (401/403) never are. Real HTTP against the app with security as shipped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import select

from mlgate.db.engine import Database
from mlgate.db.tables.predlog import PredictionRecord
from tests.secure import SecureApp, bearer, secure_app, v2_body

pytestmark = pytest.mark.anyio

INFER = "/v2/models/breast-cancer/infer"


async def _records(database: Database, n: int, timeout_s: float = 10.0) -> list[PredictionRecord]:
    """The log's records, once there are at least ``n`` (the writer inserts in the background)."""
    with anyio.fail_after(timeout_s):
        while True:
            async with database.session() as session:
                rows = list((await session.execute(select(PredictionRecord).order_by(PredictionRecord.id))).scalars())
            if len(rows) >= n:
                return rows
            await anyio.sleep(0.05)


async def _written(sec: SecureApp) -> list[PredictionRecord]:
    """Every record the requests so far produced: closing the log writes each buffered one, and the requests
    recorded theirs before they answered, so no record can come later (no waiting for one that never comes)."""
    predlog = sec.app.state.mlgate.control.predlog
    assert predlog is not None
    await predlog.close()
    return await _records(sec.app.state.mlgate.database, 0)


def _summary(rows: list[PredictionRecord]) -> list[tuple[Any, ...]]:
    return [(r.model, r.status, r.caller) for r in rows]


async def test_429_and_bad_input_are_logged_once_and_unknown_models_never(examples_repo: Path) -> None:
    async with secure_app(examples_repo, rate_limit_tiers={"default": {"requests": "3/minute"}},
                          prediction_log_interval_s=0.05) as sec:
        await sec.user("alice")
        key = await sec.key("alice")
        prefix = key.split("_")[0] + "_" + key.split("_")[1]
        caller = f"key:{prefix} (user:alice)"
        auth = bearer(key)
        assert (await sec.client.post(INFER, json=v2_body(), headers=auth)).status_code == 200
        bad = {"inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP64", "data": [0, 0]}]}
        response = await sec.client.post(INFER, json=bad, headers=auth)
        assert response.status_code == 400 and response.json()["field"]
        assert (await sec.client.post(INFER, json=v2_body(), headers=auth)).status_code == 200
        refused = await sec.client.post(INFER, json=v2_body(), headers=auth)
        assert refused.status_code == 429
        # Not inference: metadata over the limit is refused too, but it is not a prediction.
        assert (await sec.client.get("/v2/models/breast-cancer", headers=auth)).status_code == 429
        # A made-up model name: its counters are its own (limits count per model), so it is a 404, never a row.
        invented = await sec.client.post("/v2/models/no-such-model-xyz/infer", json=v2_body(), headers=auth)
        assert invented.status_code == 404, invented.text
        # No credentials, wrong credentials: 401, never a row.
        assert (await sec.client.post(INFER, json=v2_body())).status_code == 401
        assert (await sec.client.post(INFER, json=v2_body(), headers=bearer("mlg_000000000000_x"))).status_code == 401
        rows = await _written(sec)
        assert _summary(rows) == [("breast-cancer", 200, caller), ("breast-cancer", 400, caller),
                                  ("breast-cancer", 200, caller), ("breast-cancer", 429, caller)]
        limited = rows[3]
        assert limited.version is None and limited.shadow is False and limited.request_id == refused.headers[
            "x-request-id"]
        assert 0 <= limited.latency_ms < 5000


async def test_a_429_on_rows_inside_the_data_plane_is_logged_once(examples_repo: Path) -> None:
    # The rows limit is charged after the body is decoded, inside the data plane's serving block: the
    # observer logs it (with the version that would have answered), and the error handler must not log it again.
    async with secure_app(examples_repo, rate_limit_tiers={"default": {"rows": "2/minute"}},
                          prediction_log_interval_s=0.05) as sec:
        await sec.user("bob")
        key = await sec.key("bob")
        for _ in range(2):
            response = await sec.client.post(INFER, json=v2_body(), headers=bearer(key))  # 3 rows > 2
            assert response.status_code == 429
        rows = await _written(sec)
        assert [r.status for r in rows] == [429, 429]
        assert all(r.version is not None for r in rows)
