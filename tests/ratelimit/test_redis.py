"""Rate limits on a real Redis: global across two real `mlgate serve` processes, and the policy when Redis is down."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from typer.testing import CliRunner

from mlgate.cli.main import app as cli
from tests.processes import free_port
from tests.secure import PASSWORD, bearer, secure_app, v2_body

INFER = "/v2/models/breast-cancer/infer"


def _start(repo: Path, env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mlgate", "serve", "--model-repository", str(repo),
                                 "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log_path.read_text()[-3000:]
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "server did not become ready in 60 s"
        time.sleep(0.2)


@pytest.fixture
def two_servers(examples_repo: Path, redis_url: str, tmp_path: Path) -> Iterator[tuple[list[str], str, str]]:
    """Two `mlgate serve` processes sharing one SQLite database and one Redis; yields (urls, key, redis_url)."""
    env = {**os.environ, "MLGATE_DATA_DIR": str(tmp_path / "data"), "MLGATE_LOG_FORMAT": "json",
           "MLGATE_RATE_LIMIT_STORAGE": redis_url, "MLGATE_RATE_LIMIT_KEY_PREFIX": "two-proc",
           "MLGATE_RATE_LIMIT_TIERS": json.dumps({"default": {"requests": "5/hour"},
                                                  "anonymous": {"requests": "3/hour"}}),
           "MLGATE_ANONYMOUS_MODELS": '["digits"]'}
    runner = CliRunner(env=env)
    made = runner.invoke(cli, ["users", "create", "ops", "--password-stdin"], input="ops password 1\n")
    assert made.exit_code == 0, made.output
    created = runner.invoke(cli, ["keys", "create", "--user", "ops", "--name", "shared", "--plain"])
    assert created.exit_code == 0, created.output
    key = created.output.strip()
    procs = []
    try:
        urls = []
        for i in range(2):  # one after the other: the first applies the migrations
            proc, url = _start(examples_repo, env, tmp_path / f"serve-{i}.log")
            procs.append(proc)
            urls.append(url)
        yield urls, key, redis_url
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=20)


def test_a_key_gets_its_limit_once_in_total_across_two_processes(two_servers: tuple[list[str], str, str]) -> None:
    urls, key, redis_url = two_servers
    answers = []
    for i in range(10):
        response = httpx.post(urls[i % 2] + INFER, json=v2_body(), headers=bearer(key), timeout=10)
        answers.append((response.status_code, response.headers.get("ratelimit-remaining")))
    assert answers[:5] == [(200, "4"), (200, "3"), (200, "2"), (200, "1"), (200, "0")]
    assert [code for code, _ in answers[5:]] == [429] * 5
    # The counters live in that Redis database, under the configured prefix.
    keys = redis.Redis.from_url(redis_url).keys("two-proc:*")
    assert keys and all(b"breast-cancer" in k for k in keys)


def _closed_port_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


@pytest.mark.anyio
async def test_redis_down_default_policy_allows_logs_once_and_counts(
    examples_repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mlgate.ratelimit")
    async with secure_app(examples_repo, rate_limit_storage=_closed_port_url(),
                          rate_limit_tiers={"default": {"requests": "1/minute"}}) as sec:
        await sec.user("alice")
        key = await sec.key("alice")
        codes = [(await sec.client.post(INFER, json=v2_body(), headers=bearer(key))).status_code for _ in range(4)]
        assert codes == [200] * 4  # the 1/minute limit could not be checked: allowed
        metrics = (await sec.client.get("/metrics")).text
    line = next(x for x in metrics.splitlines() if x.startswith("mlgate_rate_limit_storage_errors_total"))
    assert 'policy="allow"' in line and float(line.split()[-1]) == 4.0
    warnings = [r for r in caplog.records if "rate-limit storage unreachable" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.anyio
async def test_redis_down_refuse_policy_answers_503(examples_repo: Path) -> None:
    async with secure_app(examples_repo, rate_limit_storage=_closed_port_url(),
                          rate_limit_on_storage_error="refuse") as sec:
        await sec.user("alice")
        key = await sec.key("alice")
        for _ in range(2):
            response = await sec.client.post(INFER, json=v2_body(), headers=bearer(key))
            assert response.status_code == 503
            assert response.json()["code"] == "rate_limit_unavailable"
            assert response.headers["retry-after"] == "5"
        # Authentication still comes first: no credentials is a 401, not a 503.
        assert (await sec.client.post(INFER, json=v2_body())).status_code == 401
        metrics = (await sec.client.get("/metrics")).text
        assert 'mlgate_rate_limit_storage_errors_total{policy="refuse"} 2.0' in metrics


@pytest.mark.anyio
async def test_two_apps_on_one_redis_share_counters(examples_repo: Path, redis_url: str, tmp_path: Path) -> None:
    settings = {"rate_limit_storage": redis_url, "data_dir": tmp_path,
                "rate_limit_tiers": {"default": {"rows": "5/hour"}}}
    async with secure_app(examples_repo, **settings) as one, secure_app(examples_repo, **settings) as two:
        await one.user("alice")
        key = await one.key("alice")
        assert (await one.client.post(INFER, json=v2_body(), headers=bearer(key))).status_code == 200  # 3 rows
        refused = await two.client.post(INFER, json=v2_body(), headers=bearer(key))  # 6 > 5
        assert refused.status_code == 429 and refused.headers["ratelimit-remaining"] == "2"


def test_x_forwarded_for_from_a_real_untrusted_peer_does_not_pick_the_bucket(
    two_servers: tuple[list[str], str, str]
) -> None:
    """uvicorn must not rewrite the client from X-Forwarded-For (its default trusts 127.0.0.1)."""
    urls, _, _ = two_servers
    codes = []
    for i in range(5):
        headers = {"X-Forwarded-For": f"198.51.100.{i}", "Forwarded": f"for=198.51.100.{i}"}
        codes.append(httpx.get(urls[i % 2] + "/v2/models/digits", headers=headers, timeout=10).status_code)
    assert codes == [200, 200, 200, 429, 429]


@pytest.mark.anyio
@pytest.mark.parametrize("policy", ["refuse", "allow"])
async def test_redis_down_logins_fall_back_to_a_local_limit(examples_repo: Path, policy: str) -> None:
    async with secure_app(examples_repo, rate_limit_storage=_closed_port_url(), login_rate_limit="3/hour",
                          rate_limit_on_storage_error=policy) as sec:
        await sec.user("root")
        form = {"username": "root", "password": PASSWORD}
        codes = [(await sec.client.post("/api/v1/auth/token", data=form)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]  # signing in still works, and is still limited
        metrics = (await sec.client.get("/metrics")).text
        assert 'mlgate_rate_limit_storage_errors_total{policy="local"} 4.0' in metrics
