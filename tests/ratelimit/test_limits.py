"""Rate limits and quotas through the real app (memory storage): headers, tiers, quotas, per-model overrides."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.secure import ROWS, bearer, secure_app, v1_body, v2_body

pytestmark = pytest.mark.anyio

INFER = "/v2/models/breast-cancer/infer"


async def test_successes_carry_ratelimit_headers_and_429_adds_retry_after(examples_repo: Path) -> None:
    async with secure_app(examples_repo, rate_limit_tiers={"default": {"requests": "2/minute"}}) as sec:
        await sec.user("alice")
        key = await sec.key("alice")
        first = await sec.client.post(INFER, json=v2_body(), headers=bearer(key))
        assert first.status_code == 200
        assert first.headers["ratelimit-limit"] == "2" and first.headers["ratelimit-remaining"] == "1"
        assert 0 < int(first.headers["ratelimit-reset"]) <= 60
        second = await sec.client.post(INFER, json=v2_body(), headers=bearer(key))
        assert second.headers["ratelimit-remaining"] == "0"
        refused = await sec.client.post(INFER, json=v2_body(), headers=bearer(key))
        assert refused.status_code == 429
        assert refused.json() == {"error": "rate limit of 2 requests per 1 minute reached", "code": "rate_limited",
                                  "field": None}
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["ratelimit-limit"] == "2" and refused.headers["ratelimit-remaining"] == "0"
        # Health is never limited.
        assert [(await sec.client.get("/v2/health/live")).status_code for _ in range(5)] == [200] * 5


async def test_anonymous_callers_are_limited_per_address(examples_repo: Path) -> None:
    async with secure_app(examples_repo, anonymous_models=["breast-cancer"],
                          rate_limit_tiers={"anonymous": {"requests": "2/minute"}}) as sec:
        codes = [(await sec.client.post(INFER, json=v2_body())).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        async with sec.client_from("192.0.2.9") as other:
            assert (await other.post(INFER, json=v2_body())).status_code == 200


async def test_daily_quotas_in_requests_and_rows(examples_repo: Path) -> None:
    tiers = {"default": {"daily_requests": 3}, "metered": {"daily_rows": 4}}
    async with secure_app(examples_repo, rate_limit_tiers=tiers) as sec:
        await sec.user("alice")
        daily = await sec.key("alice")
        assert [(await sec.client.post(INFER, json=v2_body(), headers=bearer(daily))).status_code
                for _ in range(4)] == [200, 200, 200, 429]
        refused = await sec.client.get("/v2/models/breast-cancer", headers=bearer(daily))
        assert refused.status_code == 429 and "daily quota of 3 requests" in refused.json()["error"]
        assert int(refused.headers["retry-after"]) > 3600  # a day's window, not a minute's
        metered = await sec.key("alice", tier="metered", name="metered")
        assert (await sec.client.post(INFER, json=v2_body(ROWS[:3]), headers=bearer(metered))).status_code == 200
        over = await sec.client.post("/v1/models/breast-cancer:predict", json=v1_body(ROWS[:2]),
                                     headers=bearer(metered))
        assert over.status_code == 429 and "daily quota of 4 rows" in over.json()["error"]


async def test_a_batch_larger_than_the_limit_is_refused_with_a_clear_message(examples_repo: Path) -> None:
    async with secure_app(examples_repo, rate_limit_tiers={"default": {"rows": "2/minute"}}) as sec:
        await sec.user("alice")
        key = await sec.key("alice")
        response = await sec.client.post(INFER, json=v2_body(ROWS[:3]), headers=bearer(key))
        assert response.status_code == 429
        assert "costs 3 rows" in response.json()["error"] and "smaller batches" in response.json()["error"]


async def test_per_model_overrides_from_settings_and_from_the_manifest(examples_repo: Path, tmp_path: Path) -> None:
    shutil.copytree(examples_repo / "breast-cancer", tmp_path / "breast-cancer")
    shutil.copytree(examples_repo / "digits", tmp_path / "digits")
    manifest = tmp_path / "breast-cancer" / "model.toml"
    manifest.write_text(manifest.read_text() + '\n[access]\nanonymous = true\n\n[rate_limit.anonymous]\n'
                        'requests = "1/minute"\n\n[rate_limit.default]\nrequests = "2/minute"\n')
    overrides = {"digits": {"default": {"requests": "1/minute"}}}
    async with secure_app(tmp_path, rate_limit_models=overrides) as sec:
        await sec.user("alice")
        key = await sec.key("alice")
        # The manifest opens breast-cancer to anonymous callers (only it) and sets its limits per tier.
        assert [(await sec.client.post(INFER, json=v2_body())).status_code for _ in range(2)] == [200, 429]
        assert (await sec.client.get("/v2/models/digits")).status_code == 401
        assert [(await sec.client.post(INFER, json=v2_body(), headers=bearer(key))).status_code
                for _ in range(3)] == [200, 200, 429]
        assert [(await sec.client.get("/v2/models/digits", headers=bearer(key))).status_code
                for _ in range(2)] == [200, 429]
        # /v2 is open to anonymous callers once some model is.
        assert (await sec.client.get("/v2")).status_code == 200


async def test_login_attempts_are_rate_limited_per_address(examples_repo: Path) -> None:
    async with secure_app(examples_repo, login_rate_limit="3/hour") as sec:
        await sec.user("alice")
        codes = [(await sec.client.post("/api/v1/auth/token", data={"username": "alice", "password": "guess-guess"}))
                 .status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        right = await sec.client.post("/api/v1/auth/token", data={"username": "alice", "password": "x" * 10})
        assert right.status_code == 429  # even the right password waits: no oracle for brute force


async def test_limits_can_be_turned_off(examples_repo: Path) -> None:
    async with secure_app(examples_repo, rate_limit_enabled=False,
                          rate_limit_tiers={"default": {"requests": "1/minute"}}) as sec:
        await sec.user("alice")
        key = await sec.key("alice")
        responses = [await sec.client.post(INFER, json=v2_body(), headers=bearer(key)) for _ in range(3)]
        assert [r.status_code for r in responses] == [200, 200, 200]
        assert "ratelimit-limit" not in responses[0].headers
