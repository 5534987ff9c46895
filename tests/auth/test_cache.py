"""The credential cache over real HTTP: fast, yet revocation and role changes take effect at once here and
within 2 s on another server sharing the database (SQLite and PostgreSQL; a real second `mlgate serve`)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import update

from mlgate.auth import Role
from mlgate.auth import authenticator as authenticator_module
from mlgate.auth.authenticator import Authenticator
from mlgate.db.tables.identity import ApiKey
from tests.processes import serve_process
from tests.secure import PASSWORD, TEST_ACTOR, SecureApp, bearer, secure_app, v2_body

pytestmark = pytest.mark.anyio

INFER = "/v2/models/breast-cancer/infer"
AGREE_WITHIN_S = 2.0
JWT_SECRET = "a test secret both servers share, 32+ chars long"


def _authenticator(sec: SecureApp) -> Authenticator:
    authenticator: Authenticator = sec.app.state.mlgate.security.authenticator
    return authenticator


async def _infer(client: httpx.AsyncClient, credential: str) -> int:
    return (await client.post(INFER, json=v2_body(), headers=bearer(credential))).status_code


async def test_a_revoked_key_is_refused_on_the_very_next_request(examples_repo: Path, database_url: str) -> None:
    async with secure_app(examples_repo, database_url=database_url) as sec:
        await sec.user("alice")
        key = await sec.key("alice")
        assert await _infer(sec.client, key) == 200
        assert len(_authenticator(sec).keys) == 1  # the key is cached now
        assert await _infer(sec.client, key) == 200
        token = await sec.token("alice")
        revoked = await sec.client.delete(f"/api/v1/keys/{key[:16]}", headers=bearer(token))
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        assert await _infer(sec.client, key) == 401
        assert len(_authenticator(sec).keys) == 0


async def test_a_wrong_secret_is_refused_right_after_the_real_key_was_cached(
    examples_repo: Path, database_url: str
) -> None:
    async with secure_app(examples_repo, database_url=database_url) as sec:
        await sec.user("alice")
        key = await sec.key("alice")
        assert await _infer(sec.client, key) == 200
        assert len(_authenticator(sec).keys) == 1
        last = "A" if key[-1] != "A" else "B"
        for forged in (key[:-1] + last, key[:17] + "x" * 43):
            assert forged[:16] == key[:16] and forged != key
            response = await sec.client.post(INFER, json=v2_body(), headers=bearer(forged))
            assert response.status_code == 401 and response.json()["code"] == "invalid_credentials"
        assert await _infer(sec.client, key) == 200  # the real key still works


async def test_a_deactivated_users_key_and_token_are_refused_at_once(examples_repo: Path, database_url: str) -> None:
    async with secure_app(examples_repo, database_url=database_url) as sec:
        await sec.user("alice")
        key, token = await sec.key("alice"), await sec.token("alice")
        for credential in (key, token):
            assert await _infer(sec.client, credential) == 200
        assert len(_authenticator(sec).keys) == 1 and len(_authenticator(sec).users) == 1
        await sec.store.update_user("alice", active=False, actor=TEST_ACTOR)
        for credential in (key, token):
            assert await _infer(sec.client, credential) == 401
        await sec.store.update_user("alice", active=True, actor=TEST_ACTOR)
        for credential in (key, token):
            assert await _infer(sec.client, credential) == 200


async def test_a_role_downgrade_loses_admin_rights_at_once(examples_repo: Path, database_url: str) -> None:
    async with secure_app(examples_repo, database_url=database_url) as sec:
        await sec.user("root", Role.ADMIN)
        await sec.user("bob")
        key, token = await sec.key("root"), await sec.token("root")
        for credential in (key, token):  # only an admin lists another user's keys
            assert (await sec.client.get("/api/v1/keys?user=bob", headers=bearer(credential))).status_code == 200
        await sec.store.update_user("root", role=Role.USER, actor=TEST_ACTOR)
        for credential in (key, token):
            response = await sec.client.get("/api/v1/keys?user=bob", headers=bearer(credential))
            assert response.status_code == 403, response.text
        me = (await sec.client.get("/api/v1/auth/me", headers=bearer(token))).json()
        assert me["role"] == "user"


async def test_narrowed_key_scopes_and_new_groups_apply_at_once(examples_repo: Path, database_url: str) -> None:
    async with secure_app(examples_repo, database_url=database_url, user_models=[]) as sec:
        await sec.store.create_group("cancer", ["breast-cancer"], actor=TEST_ACTOR)
        await sec.user("alice")
        key, token = await sec.key("alice"), await sec.token("alice")
        for credential in (key, token):
            assert await _infer(sec.client, credential) == 403  # no group yet: no model
        await sec.store.add_to_group("alice", "cancer", actor=TEST_ACTOR)
        for credential in (key, token):
            assert await _infer(sec.client, credential) == 200
        await sec.store.update_key_scopes(key[:16], models=["digits"], actor=TEST_ACTOR)
        assert await _infer(sec.client, key) == 403
        assert await _infer(sec.client, token) == 200


async def test_with_the_cache_off_every_request_reads_the_database(examples_repo: Path) -> None:
    async with secure_app(examples_repo, auth_cache_size=0) as sec:
        await sec.user("alice")
        key, token = await sec.key("alice"), await sec.token("alice")
        for credential in (key, token, key, token):
            assert await _infer(sec.client, credential) == 200
        assert len(_authenticator(sec).keys) == 0 and len(_authenticator(sec).users) == 0
        await sec.store.revoke_key(key[:16], actor=TEST_ACTOR)
        assert await _infer(sec.client, key) == 401
        assert await _infer(sec.client, token) == 200


async def _refused_within(client: httpx.AsyncClient, credential: str, path: str = INFER,
                          status: int = 401) -> float:
    """Seconds until ``credential`` gets ``status`` on ``path`` (a 200 before that); fails after 2 s."""
    started = time.monotonic()
    while True:
        if path == INFER:
            code = await _infer(client, credential)
        else:
            code = (await client.get(path, headers=bearer(credential))).status_code
        if code == status:
            return time.monotonic() - started
        assert code == 200, code
        assert time.monotonic() - started < AGREE_WITHIN_S, f"still {code} after {AGREE_WITHIN_S} s"
        await anyio.sleep(0.02)


async def test_changes_reach_another_server_within_two_seconds(
    examples_repo: Path, tmp_path: Path, database_url: str
) -> None:
    url = database_url
    env = {"MLGATE_DATABASE_URL": url, "MLGATE_JWT_SECRET": JWT_SECRET, "MLGATE_ANONYMOUS_MODELS": "[]",
           "MLGATE_AUTH_CACHE_TTL_S": "60"}  # a long TTL: only the change follower can make this pass
    async with secure_app(examples_repo, database_url=url, jwt_secret=JWT_SECRET) as sec:
        await sec.user("alice")
        await sec.user("bob")
        await sec.user("root", Role.ADMIN)
        alice_key = await sec.key("alice")
        bob_key, bob_token = await sec.key("bob"), await sec.token("bob")
        root_key = await sec.key("root")
        with serve_process(examples_repo, tmp_path / "b.log", env=env) as b:
            async with httpx.AsyncClient(base_url=f"http://{b}", timeout=10) as other:
                for credential in (alice_key, bob_key, bob_token):
                    assert await _infer(other, credential) == 200
                    assert await _infer(other, credential) == 200  # cached on b now
                assert (await other.get("/api/v1/keys?user=bob", headers=bearer(root_key))).status_code == 200

                await sec.store.revoke_key(alice_key[:16], actor=TEST_ACTOR)  # on server a (this process)
                assert await _infer(sec.client, alice_key) == 401
                assert await _refused_within(other, alice_key) < AGREE_WITHIN_S

                await sec.store.update_user("bob", active=False, actor=TEST_ACTOR)
                assert await _refused_within(other, bob_key) < AGREE_WITHIN_S
                assert await _refused_within(other, bob_token) < AGREE_WITHIN_S

                await sec.store.update_user("root", role=Role.USER, actor=TEST_ACTOR)
                assert await _refused_within(other, root_key, "/api/v1/keys?user=bob", 403) < AGREE_WITHIN_S


async def test_a_cached_key_still_expires_on_time(examples_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The authenticator's clock is moved to the key's expiry instead of waiting for it in real time."""
    async with secure_app(examples_repo, auth_cache_ttl_s=300) as sec:
        await sec.user("alice")
        expires_at = datetime.now(UTC) + timedelta(hours=1)
        key = await sec.key("alice", expires_at=expires_at)
        assert await _infer(sec.client, key) == 200
        assert len(_authenticator(sec).keys) == 1
        monkeypatch.setattr(authenticator_module, "utcnow", lambda: expires_at - timedelta(microseconds=1))
        assert await _infer(sec.client, key) == 200  # the last instant before the expiry, from the cache
        assert len(_authenticator(sec).keys) == 1
        monkeypatch.setattr(authenticator_module, "utcnow", lambda: expires_at)
        assert await _infer(sec.client, key) == 401


async def test_the_ttl_bounds_a_change_no_follower_sees(examples_repo: Path, database_url: str) -> None:
    """A row edited by hand (no change recorded) is in effect once the cached entry's TTL has run out."""
    async with secure_app(examples_repo, database_url=database_url, auth_cache_ttl_s=1) as sec:
        await sec.user("alice")
        key = await sec.key("alice")
        assert await _infer(sec.client, key) == 200
        async with sec.store.database.session() as session:
            await session.execute(update(ApiKey).where(ApiKey.prefix == key[:16]).values(revoked_at=datetime.now(UTC)))
        started = time.monotonic()
        while await _infer(sec.client, key) == 200:
            assert time.monotonic() - started < 1 + AGREE_WITHIN_S, "the TTL did not bound the cached entry"
            await anyio.sleep(0.05)
        assert await _infer(sec.client, key) == 401


async def test_a_revoke_reaches_every_http_process_of_one_server(
    examples_repo: Path, tmp_path: Path, sqlite_url: str
) -> None:
    env = {"MLGATE_DATABASE_URL": sqlite_url, "MLGATE_WORKERS": "2", "MLGATE_ANONYMOUS_MODELS": "[]",
           "MLGATE_AUTH_CACHE_TTL_S": "60"}
    log = tmp_path / "serve.log"
    async with secure_app(examples_repo, database_url=sqlite_url) as sec:
        await sec.user("alice")
        key = await sec.key("alice")
        with serve_process(examples_repo, log, env=env) as url:

            async def fresh(credential: str) -> int:  # a new connection: either HTTP process may answer
                async with httpx.AsyncClient(base_url=f"http://{url}", timeout=10) as client:
                    return await _infer(client, credential)

            assert [await fresh(key) for _ in range(30)] == [200] * 30  # cached in both processes
            async with httpx.AsyncClient(base_url=f"http://{url}", timeout=10) as client:
                signed_in = await client.post("/api/v1/auth/token", data={"username": "alice", "password": PASSWORD})
                token = signed_in.json()["access_token"]
                assert (await client.delete(f"/api/v1/keys/{key[:16]}", headers=bearer(token))).status_code == 200
            started, refused_since, refused_in_a_row = time.monotonic(), 0.0, 0
            while refused_in_a_row < 20:  # 20 fresh connections in a row refused: both processes refuse it
                code = await fresh(key)
                assert code in (200, 401), code
                if code == 401 and refused_in_a_row == 0:
                    refused_since = time.monotonic()
                refused_in_a_row = refused_in_a_row + 1 if code == 401 else 0
                assert time.monotonic() - started < 10, "a process still takes the revoked key"
            assert refused_since - started < AGREE_WITHIN_S
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert len({line["pid"] for line in lines if line.get("path") == INFER and line.get("status") == 401}) == 2
