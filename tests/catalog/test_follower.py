"""Replicas agree: two real `mlgate serve` processes on one database and one artifact store.

A promote made through one is answered by the other within 2 s: on PostgreSQL by LISTEN/NOTIFY, on a
shared SQLite file by polling (the fallback, every registry_poll_interval_s = 1 s by default).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlgate.model.archives import pack_to_bytes
from tests.processes import admin_key, serve_process
from tests.registry_helpers import API, ZEROS, versioned_model

AGREE_WITHIN_S = 2.0


@contextmanager
def replica(name: str, tmp_path: Path, env: dict[str, str]) -> Iterator[str]:
    """A real `mlgate serve` process with its own data dir (cache), on the given database and store."""
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    full_env = {**env, "MLGATE_DATA_DIR": str(tmp_path / f"data-{name}"), "MLGATE_ACCESS_LOG": "false",
                "MLGATE_ALLOW_EMPTY_REPOSITORY": "true"}  # a registry-only server: models are pushed to it
    with serve_process(repo, tmp_path / f"{name}.log", full_env) as address:
        yield f"http://{address}"


def _version(url: str) -> str | None:
    response = httpx.post(f"{url}/v2/models/sum/infer", json=ZEROS, timeout=5)
    if response.status_code != 200:
        return None
    body = response.json()
    assert body["outputs"][0]["data"][0] == float(body["model_version"])
    return str(body["model_version"])


def _seconds_until(url: str, version: str, limit_s: float = 10.0) -> float:
    started = time.monotonic()
    while (seen := _version(url)) != version:
        assert time.monotonic() - started < limit_s, f"{url} still answers {seen}, not {version}"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_promote_on_one_replica_is_in_effect_on_the_other(tmp_path: Path, database_url: str) -> None:
    env = {"MLGATE_DATABASE_URL": database_url, "MLGATE_ARTIFACT_STORE": str(tmp_path / "artifacts")}
    with replica("a", tmp_path, env) as a, replica("b", tmp_path, env) as b:
        auth = {"Authorization": f"Bearer {admin_key(a)}"}  # one database: the key works on both replicas
        for v in (1, 2):
            archive = pack_to_bytes(versioned_model(tmp_path, v))
            pushed = httpx.post(f"{a}{API}/models/sum/versions", files={"file": ("m.tar.gz", io.BytesIO(archive))},
                                headers=auth)
            assert pushed.status_code == 201, pushed.text
        assert httpx.post(f"{a}{API}/models/sum/promote", json={"version": "1"}, headers=auth).status_code == 200
        assert _version(a) == "1"  # in effect on the replica that took the change when it answers
        assert _seconds_until(b, "1") < AGREE_WITHIN_S

        assert httpx.post(f"{a}{API}/models/sum/promote", json={"version": "2"}, timeout=30,
                          headers=auth).status_code == 200
        assert _seconds_until(b, "2") < AGREE_WITHIN_S

        assert httpx.post(f"{b}{API}/models/sum/rollback", timeout=30, headers=auth).status_code == 200
        assert _version(b) == "1"
        assert _seconds_until(a, "1") < AGREE_WITHIN_S


@pytest.mark.anyio
async def test_the_listener_reconnects_after_the_database_connection_is_lost(
    app_client: Any, tmp_path: Path, postgres_url: str
) -> None:
    """B polls only every 30 s here, so it can follow A quickly only through LISTEN/NOTIFY, and after the
    connection to PostgreSQL is cut and restored only if its listener reconnected."""
    import anyio
    from sqlalchemy.engine import make_url

    from tests.registry_helpers import answer, promote, push
    from tests.tcp_proxy import TcpProxy

    direct = make_url(postgres_url)
    proxy = TcpProxy(direct.host or "127.0.0.1", direct.port or 5432)
    await proxy.start()
    via_proxy = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    (tmp_path / "repo").mkdir()
    store = str(tmp_path / "artifacts")
    async with app_client(tmp_path / "repo", database_url=postgres_url, artifact_store=store) as a, \
            app_client(tmp_path / "repo", database_url=via_proxy, artifact_store=store,
                       registry_poll_interval_s=30) as b:
        follower = b._transport.app.state.mlgate.control.follower
        for v in (1, 2):
            await push(a, "sum", versioned_model(tmp_path, v))
        await promote(a, "sum", "1")
        with anyio.fail_after(AGREE_WITHIN_S):
            while (await answer(b))[0] != "1":
                await anyio.sleep(0.02)
        await proxy.cut()
        with anyio.fail_after(15):  # the listener notices its connection is gone
            while follower.listening:
                await anyio.sleep(0.02)
        await proxy.restore()
        with anyio.fail_after(15):
            while not follower.listening:
                await anyio.sleep(0.05)
        await promote(a, "sum", "2")
        with anyio.fail_after(AGREE_WITHIN_S):
            while (await answer(b))[0] != "2":
                await anyio.sleep(0.02)
    await proxy.cut()
