"""Bad input to the registry and prediction-log APIs is a 4xx JSON error, never a 5xx."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.registry_helpers import API, push, versioned_model

pytestmark = pytest.mark.anyio

CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("PUT", "/models/sum/aliases/..%2Fx", {"json": {"version": "1"}}),
    ("PUT", "/models/sum/aliases/staging", {"json": {"version": 1}}),
    ("PUT", "/models/sum/aliases/staging", {"json": ["1"]}),
    ("PUT", "/models/sum/aliases/staging", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("POST", "/models/sum/promote", {"json": {}}),
    ("POST", "/models/sum/promote", {"json": {"version": "1", "alias": "a" * 300}}),
    ("POST", "/models/sum/rollback", {"json": {"alias": None}}),
    ("PATCH", "/models/sum", {"json": {"log_sample_rate": "nan"}}),
    ("PATCH", "/models/sum", {"json": {"log_sample_rate": 2}}),
    ("PATCH", "/models/sum", {"json": {"unknown": 1}}),
    ("PATCH", "/models/nope", {"json": {"log_sample_rate": 0.5}}),
    ("GET", "/models/" + "x" * 5000, {}),
    ("DELETE", "/models/sum/versions/..", {}),
    ("GET", "/predictions?since=2026-13-01", {}),
    ("GET", "/predictions?limit=1000000", {}),
    ("GET", "/predictions?status=999", {}),
    ("GET", "/predictions?cursor=" + "A" * 60, {}),
    ("GET", "/predictions?shadow=maybe", {}),
    ("GET", "/predictions/export?until=tomorrow", {}),
    ("POST", "/models/sum/versions", {"content": b"--zz\r\n", "headers": {"content-type": "multipart/form-data"}}),
    ("POST", "/models/sum/versions", {"files": {"file": ("a", b"")}, "data": {"version": "x" * 200}}),
    ("POST", "/models/sum/versions", {"data": {"file": "not a file"}}),
]


async def test_bad_registry_requests_are_4xx(app_client: Callable[..., Any], tmp_path: Path,
                                             sqlite_url: str) -> None:
    (tmp_path / "repo").mkdir()
    async with app_client(tmp_path / "repo", database_url=sqlite_url) as client:
        await push(client, "sum", versioned_model(tmp_path, 1))
        for method, path, kw in CASES:
            response = await client.request(method, API + path, **kw)
            assert 400 <= response.status_code < 500, (method, path, response.text)
            body = response.json()
            assert body["error"] and body["code"], (method, path)
        assert (await client.get(f"{API}/models/sum")).json()["versions"][0]["state"] == "READY"
