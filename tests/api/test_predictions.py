"""The prediction log over REST explains failures: each refused or failed request's error code and message,
the anonymous caller named as the docs name it, a ``request_id`` filter, and a 400 for a filter it does not
know. Real HTTP against the app with security as shipped; the writer inserts in the background."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from mlgate.auth import Role
from tests.secure import bearer, secure_app, v2_body

pytestmark = pytest.mark.anyio

INFER = "/v2/models/breast-cancer/infer"


async def _items(client: httpx.AsyncClient, admin: dict[str, str], n: int, **params: Any) -> list[dict[str, Any]]:
    """The log's records (newest first), once there are at least ``n`` matching ``params``."""
    with anyio.fail_after(10):
        while True:
            response = await client.get("/api/v1/predictions", params=params, headers=admin)
            assert response.status_code == 200, response.text
            items: list[dict[str, Any]] = response.json()["items"]
            if len(items) >= n:
                return items
            await anyio.sleep(0.05)


async def test_the_log_says_why_a_request_failed_and_filters_by_request_id(examples_repo: Path) -> None:
    tiers = {"default": {"requests": "2/minute"}, "anonymous": {"requests": ""}, "ops": {"requests": ""}}
    async with secure_app(examples_repo, rate_limit_tiers=tiers, anonymous_models=["breast-cancer"],
                          prediction_log_interval_s=0.05) as sec:
        await sec.user("root", Role.ADMIN)
        await sec.user("alice")
        admin = bearer(await sec.key("root", tier="ops"))
        alice = bearer(await sec.key("alice"))

        ok = await sec.client.post(INFER, json=v2_body())
        assert ok.status_code == 200
        bad = {"inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP64", "data": [0, 0]}]}
        invalid = await sec.client.post(INFER, json=bad, headers=alice)
        assert invalid.status_code == 400
        assert (await sec.client.post(INFER, json=v2_body(), headers=alice)).status_code == 200
        limited = await sec.client.post(INFER, json=v2_body(), headers=alice)
        assert limited.status_code == 429

        items = await _items(sec.client, admin, 4)
        by_id = {item["request_id"]: item for item in items}
        assert by_id[ok.headers["x-request-id"]]["caller"] == "anonymous"
        assert by_id[ok.headers["x-request-id"]]["error_code"] is None
        failed = by_id[invalid.headers["x-request-id"]]
        assert failed["status"] == 400 and failed["error_code"] == invalid.json()["code"] == "invalid_input"
        assert failed["error_message"] == invalid.json()["error"]
        refused = by_id[limited.headers["x-request-id"]]
        assert refused["status"] == 429 and refused["error_code"] == "rate_limited"
        assert refused["error_message"] == limited.json()["error"]

        (one,) = await _items(sec.client, admin, 1, request_id=limited.headers["x-request-id"])
        assert one["id"] == refused["id"]
        anonymous = await _items(sec.client, admin, 1, caller="anonymous")
        assert [item["request_id"] for item in anonymous] == [ok.headers["x-request-id"]]
        export = await sec.client.get("/api/v1/predictions/export", headers=admin,
                                      params={"request_id": invalid.headers["x-request-id"]})
        assert export.status_code == 200 and export.text.count("\n") == 1 and "invalid_input" in export.text

        for path in ("/api/v1/predictions", "/api/v1/predictions/export"):
            unknown = await sec.client.get(path, params={"modle": "breast-cancer"}, headers=admin)
            assert unknown.status_code == 400, path
            assert unknown.json()["field"] == "modle" and "request_id" in unknown.json()["error"]
        cursor_on_export = await sec.client.get("/api/v1/predictions/export", params={"cursor": "x"}, headers=admin)
        assert cursor_on_export.status_code == 400 and cursor_on_export.json()["field"] == "cursor"
