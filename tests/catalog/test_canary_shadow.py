"""Canary split (sticky per routing key) and shadow traffic (logged, never returned), on both databases."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.registry_helpers import API, ZEROS, answer, promote, push, versioned_model

pytestmark = pytest.mark.anyio


async def test_canary_split_is_sticky_and_shadow_answers_are_only_logged(
    app_client: Callable[..., Any], tmp_path: Path, database_url: str
) -> None:
    (tmp_path / "repo").mkdir()
    async with app_client(tmp_path / "repo", database_url=database_url, prediction_log_interval_s=0.05) as client:
        for v in (1, 2, 3):
            await push(client, "sum", versioned_model(tmp_path, v))
        await promote(client, "sum", "1")
        traffic = {"canary": {"version": "2", "percent": 30}, "shadow": "3"}
        response = await client.put(f"{API}/models/sum/traffic", json=traffic)
        assert response.status_code == 200, response.text
        assert (await client.get(f"{API}/models/sum/traffic")).json() == {
            "canary": {"version": "2", "percent": 30.0}, "shadow": "3"}

        by_key: dict[str, str] = {}
        for i in range(200):
            version, value = await answer(client, headers={"X-Routing-Key": f"user-{i}"})
            assert value == float(version)
            by_key[f"user-{i}"] = version
        share = Counter(by_key.values())
        assert set(share) == {"1", "2"}, share  # the shadow never answers
        assert 30 <= share["2"] <= 90, share  # 30 % of 200 keys, with wide room for the hash's spread
        for key in list(by_key)[:20]:  # sticky: the same key lands on the same version again
            assert (await answer(client, headers={"X-Routing-Key": key}))[0] == by_key[key]
        v1 = await client.post("/v1/models/sum:predict", json={"instances": [[0, 0, 0]]},
                               headers={"X-Routing-Key": "user-0"})
        assert v1.headers["x-model-version"] == by_key["user-0"]
        unkeyed = Counter([(await answer(client))[0] for _ in range(100)])
        assert set(unkeyed) == {"1", "2"}

        # Every answered request was copied to the shadow, whose answers are in the log only.
        sent = 200 + 20 + 1 + 100
        with anyio.fail_after(10):
            while True:
                page = (await client.get(f"{API}/predictions",
                                         params={"shadow": "true", "limit": 1000})).json()["items"]
                if len(page) >= sent:
                    break
                await anyio.sleep(0.05)
        assert len(page) == sent
        assert {(r["version"], r["status"]) for r in page} == {("3", 200)}
        assert all(r["outputs"] == {"sum": [3.0]} for r in page)
        served = (await client.get(f"{API}/predictions", params={"shadow": "false", "limit": 1000})).json()["items"]
        assert {r["version"] for r in served} == {"1", "2"}

        # The shadow and canary versions cannot be deleted while in use; clearing the traffic frees them.
        assert (await client.delete(f"{API}/models/sum/versions/3")).status_code == 409
        assert (await client.put(f"{API}/models/sum/traffic", json={})).status_code == 200
        assert {(await answer(client, headers={"X-Routing-Key": k}))[0] for k in list(by_key)[:30]} == {"1"}
        assert (await client.delete(f"{API}/models/sum/versions/3")).status_code == 204


async def test_bad_traffic_settings_are_4xx(app_client: Callable[..., Any], tmp_path: Path, sqlite_url: str) -> None:
    (tmp_path / "repo").mkdir()
    async with app_client(tmp_path / "repo", database_url=sqlite_url) as client:
        await push(client, "sum", versioned_model(tmp_path, 1))
        for body in ({"canary": {"version": "1", "percent": 0}}, {"canary": {"version": "1", "percent": 101}},
                     {"canary": {"version": "1"}}, {"shadow": "../x"}, {"weights": 1}):
            response = await client.put(f"{API}/models/sum/traffic", json=body)
            assert response.status_code == 400, (body, response.text)
        unknown = await client.put(f"{API}/models/sum/traffic", json={"shadow": "9"})
        assert unknown.status_code == 404 and unknown.json()["code"] == "model_version_not_found"
        nope = await client.put(f"{API}/models/nope/traffic", json={})
        assert nope.status_code == 404 and nope.json()["code"] == "model_not_found"
        assert (await client.post("/v2/models/sum/infer", json=ZEROS)).status_code == 200


async def test_traffic_refuses_the_production_version_and_non_numbers(
    app_client: Callable[..., Any], tmp_path: Path, sqlite_url: str
) -> None:
    (tmp_path / "repo").mkdir()
    async with app_client(tmp_path / "repo", database_url=sqlite_url) as client:
        for v in (1, 2):
            await push(client, "sum", versioned_model(tmp_path, v))
        await promote(client, "sum", "1")
        cases = [({"canary": {"version": "1", "percent": 30}}, "canary.version", "production"),
                 ({"shadow": "1"}, "shadow", "production"),
                 ({"canary": {"version": "2", "percent": True}}, "body.canary.percent", "number"),
                 ({"canary": {"version": "2", "percent": "30"}}, "body.canary.percent", "number")]
        for body, field, word in cases:
            response = await client.put(f"{API}/models/sum/traffic", json=body)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["field"] == field and word in response.json()["error"], response.json()
        assert (await client.get(f"{API}/models/sum/traffic")).json() == {"canary": None, "shadow": None}
        sample = await client.patch(f"{API}/models/sum", json={"log_sample_rate": True})
        assert sample.status_code == 400 and sample.json()["field"] == "body.log_sample_rate", sample.text
        ok = await client.put(f"{API}/models/sum/traffic", json={"canary": {"version": "2", "percent": 25}})
        assert ok.status_code == 200, ok.text
