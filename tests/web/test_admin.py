"""The admin at /admin/ over real HTTP against the app with security as shipped: sign-in, roles, CSRF,
users and keys through AuthStore, rollouts through ControlPlane, the logs, and escaping."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import itsdangerous
import pytest
from sqlalchemy import select, update

from mlgate.auth import Action, Role
from mlgate.db.tables.audit import AuditEntry
from mlgate.db.tables.identity import User
from mlgate.model.archives import pack_to_bytes
from tests.registry_helpers import ZEROS, versioned_model
from tests.secure import PASSWORD, TEST_ACTOR, SecureApp, bearer, secure_app, v2_body

pytestmark = pytest.mark.anyio

PAGES = ["/admin/", "/admin/identities", "/admin/models", "/admin/user/list", "/admin/api-key/list",
         "/admin/api-key/details/1", "/admin/model-version-record/list", "/admin/prediction-record/list",
         "/admin/audit-entry/list", "/admin/registry-change/list", "/admin/dashboard"]
INFER = "/v2/models/breast-cancer/infer"


@pytest.fixture
async def sec(examples_repo: Path) -> AsyncIterator[SecureApp]:
    async with secure_app(examples_repo, prediction_log_interval_s=0.05) as app:
        await app.user("root", Role.ADMIN)
        yield app


@pytest.fixture
async def sec_db(examples_repo: Path, database_url: str) -> AsyncIterator[SecureApp]:
    """``sec`` on SQLite and on PostgreSQL (tests that read the tables or change the registry)."""
    async with secure_app(examples_repo, prediction_log_interval_s=0.05, database_url=database_url) as app:
        await app.user("root", Role.ADMIN)
        yield app


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF field in the page"
    return match.group(1)


async def login(client: httpx.AsyncClient, user: str = "root", password: str = PASSWORD) -> httpx.Response:
    token = csrf_of((await client.get("/admin/login")).text)
    return await client.post("/admin/login", data={"username": user, "password": password, "csrf_token": token})


@asynccontextmanager
async def signed_in(sec: SecureApp, user: str = "root") -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A new client signed in as ``user``, and its CSRF token."""
    async with sec.client_from("127.0.0.1") as client:
        response = await login(client, user)
        assert response.status_code == 302 and response.headers["location"].endswith("/admin/"), response.text
        yield client, csrf_of((await client.get("/admin/models")).text)


async def test_every_page_needs_a_session(sec: SecureApp) -> None:
    for path in PAGES:
        response = await sec.client.get(path)
        assert response.status_code == 302, path
        assert response.headers["location"].endswith("/admin/login"), path
    response = await sec.client.post("/admin/identities/users", data={"username": "eve", "password": PASSWORD,
                                                                       "role": "admin"})
    assert response.status_code == 403
    assert await sec.store.get_user("eve") is None


async def test_login_sets_a_safe_cookie_and_logout_ends_it(sec: SecureApp) -> None:
    client = sec.client_from("127.0.0.1")
    async with client:
        response = await login(client)
        assert response.status_code == 302
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("mlgate_admin=") and "httponly" in cookie.lower()
        assert "samesite=lax" in cookie.lower() and "path=/admin" in cookie.lower()
        assert "secure" not in cookie.lower()  # admin_cookie_secure is off by default
        for path in PAGES:
            if path != "/admin/api-key/details/1":
                assert (await client.get(path)).status_code == 200, path
        page = await client.get("/admin/")
        assert page.headers["x-frame-options"] == "DENY"
        hosts = set(re.findall(r'(?:src|href)="(https?://[^/"]+|//[^/"]+)', page.text))
        assert hosts == set()  # every script, style and font from this server (no CDN), by relative links
        assert (await client.get("/admin/logout")).status_code == 302
        assert (await client.get("/admin/identities")).status_code == 302


async def test_secure_cookie_when_configured(examples_repo: Path) -> None:
    async with secure_app(examples_repo, admin_cookie_secure=True) as sec:
        await sec.user("root", Role.ADMIN)
        # A Secure cookie comes back only over HTTPS: over http the login form's session is lost (403).
        assert (await login(sec.client)).status_code == 403
        transport = httpx.ASGITransport(app=sec.app)
        async with httpx.AsyncClient(transport=transport, base_url="https://mlgate.test") as client:
            response = await login(client)
            assert response.status_code == 302 and "; secure" in response.headers["set-cookie"].lower()


async def test_bad_password_and_other_roles_are_refused(sec: SecureApp) -> None:
    await sec.user("alice")
    await sec.user("dora", Role.DEPLOYER)
    response = await login(sec.client, "root", "wrong password!")
    assert response.status_code == 400 and "Invalid credentials" in response.text
    assert (await sec.client.get("/admin/identities")).status_code == 302
    response = await login(sec.client, "alice")
    assert response.status_code == 403 and "may not use the admin" in response.text
    assert (await sec.client.get("/admin/identities")).status_code == 302
    # A deployer gets the model pages and the prediction log, not users, keys or the audit log.
    async with signed_in(sec, "dora") as (client, _):
        for path in ("/admin/models", "/admin/model-version-record/list", "/admin/prediction-record/list"):
            assert (await client.get(path)).status_code == 200, path
        for path in ("/admin/identities", "/admin/user/list", "/admin/api-key/list", "/admin/audit-entry/list",
                     "/admin/dashboard"):
            assert (await client.get(path)).status_code == 403, path
        response = await client.post("/admin/identities/users", data={
            "username": "mallory", "password": PASSWORD, "role": "admin", "csrf_token": csrf_of(
                (await client.get("/admin/models")).text)})
        assert response.status_code == 403
        assert await sec.store.get_user("mallory") is None
        assert "Users and keys" not in (await client.get("/admin/models")).text  # not in the menu either


async def test_a_user_demoted_while_signed_in_is_out_at_once(sec: SecureApp) -> None:
    await sec.user("dora", Role.DEPLOYER)
    async with signed_in(sec, "dora") as (client, _):
        async with sec.store.database.session() as session:
            await session.execute(update(User).where(User.username == "dora").values(role="user"))
        assert (await client.get("/admin/models")).status_code == 302


async def test_forms_without_the_csrf_token_change_nothing(sec: SecureApp) -> None:
    async with signed_in(sec) as (client, token):
        form = {"username": "eve", "password": PASSWORD, "role": "admin"}
        for extra in ({}, {"csrf_token": "forged"}, {"csrf_token": ""}):
            response = await client.post("/admin/identities/users", data={**form, **extra})
            assert response.status_code == 403, extra
            assert response.json() == {"error": response.json()["error"], "code": "csrf_failed",
                                       "field": "csrf_token"}
        assert await sec.store.get_user("eve") is None
        # A token from another session does not work either.
        async with signed_in(sec) as (_, other_token):
            pass
        assert (await client.post("/admin/identities/users", data={**form, "csrf_token": other_token})
                ).status_code == 403
        # Multipart forms, JSON bodies and the login form are checked too.
        files = {"archive": ("m.tar.gz", io.BytesIO(b"x"), "application/gzip")}
        assert (await client.post("/admin/models/push", data={"model": "x"}, files=files)).status_code == 403
        assert (await client.post("/admin/identities/users", json=form)).status_code == 403
        fresh = sec.client_from("127.0.0.1")
        async with fresh:
            response = await fresh.post("/admin/login", data={"username": "root", "password": PASSWORD})
            assert response.status_code == 403
            assert (await fresh.get("/admin/identities")).status_code == 302
        # With the token (form field or header) the same change goes through.
        response = await client.post("/admin/identities/users", data={**form, "csrf_token": token})
        assert response.status_code == 303
        assert (await sec.store.get_user("eve")) is not None
        response = await client.post("/admin/identities/groups", data={"name": "team", "models": "breast-*"},
                                     headers={"X-CSRF-Token": token})
        assert response.status_code == 303
        response = await client.post("/admin/identities/members", data={"username": "eve", "group": "team",
                                                                          "csrf_token": token})
        assert response.status_code == 303
        eve = await sec.store.get_user("eve")
        assert eve is not None and eve.groups == ("team",) and eve.group_models == ("breast-*",)
        missing = await client.post("/admin/identities/members", data={"username": "eve", "group": "nope",
                                                                         "csrf_token": token})
        assert missing.status_code == 400 and "no group" in missing.text


async def test_users_and_keys_through_the_admin(sec_db: SecureApp) -> None:
    async with signed_in(sec_db) as (client, token):
        response = await client.post("/admin/identities/users", data={
            "username": "alice", "password": PASSWORD, "role": "user", "csrf_token": token})
        assert response.status_code == 303
        page = (await client.get("/admin/identities")).text
        assert "User alice created (role user)." in page
        alice = await sec_db.store.get_user("alice")
        assert alice is not None and alice.role == Role.USER
        assert await sec_db.store.check_password("alice", PASSWORD) is not None  # hashed by the store

        bad = await client.post("/admin/identities/users", data={
            "username": "alice", "password": PASSWORD, "role": "user", "csrf_token": token})
        assert bad.status_code == 409 and "already exists" in bad.text
        weak = await client.post("/admin/identities/users", data={
            "username": "bob", "password": "x", "role": "user", "csrf_token": token})
        assert weak.status_code == 400 and await sec_db.store.get_user("bob") is None

        response = await client.post("/admin/identities/keys", data={
            "username": "alice", "name": "ci", "models": "breast-cancer", "csrf_token": token})
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        key = re.search(r'<pre id="created-key"[^>]*>([^<]+)</pre>', response.text)
        assert key, response.text
        secret = key.group(1)
        assert (await sec_db.client.post(INFER, json=v2_body(), headers=bearer(secret))).status_code == 200
        assert secret not in (await client.get("/admin/identities")).text  # shown once
        assert secret not in (await client.get("/admin/api-key/list")).text
        (info,) = await sec_db.store.list_keys("alice")
        assert info.models == ("breast-cancer",) and info.name == "ci"

        # Actions within the user's role only.
        too_much = await client.post("/admin/identities/keys", data={
            "username": "alice", "name": "deploy", "actions": ["predict", "deploy"], "csrf_token": token})
        assert too_much.status_code == 400 and "can grant only predict" in too_much.text
        assert len(await sec_db.store.list_keys("alice")) == 1
        response = await client.post("/admin/identities/keys", data={
            "username": "root", "name": "deploy-only", "actions": ["deploy"], "expires_at": "2999-01-01T00:00",
            "csrf_token": token})
        assert response.status_code == 200
        (deploy,) = [k for k in await sec_db.store.list_keys("root") if k.name == "deploy-only"]
        assert deploy.actions == (Action.DEPLOY,) and deploy.expires_at is not None
        assert deploy.expires_at.year == 2999
        past = await client.post("/admin/identities/keys", data={
            "username": "root", "name": "old", "expires_at": "2001-01-01T00:00", "csrf_token": token})
        assert past.status_code == 400 and "future" in past.text
        nonsense = await client.post("/admin/identities/keys", data={
            "username": "root", "name": "old", "expires_at": "soon", "csrf_token": token})
        assert nonsense.status_code == 400

        response = await client.post("/admin/identities/keys/revoke", data={"prefix": info.prefix,
                                                                            "csrf_token": token})
        assert response.status_code == 303
        assert (await sec_db.client.post(INFER, json=v2_body(), headers=bearer(secret))).status_code == 401
        missing = await client.post("/admin/identities/keys/revoke", data={"prefix": "nope", "csrf_token": token})
        assert missing.status_code == 404

        # The audit log shows each change with the admin as the actor.
        audit = (await client.get("/admin/audit-entry/list?actor=user:root&actor_op=equals")).text
        for action in ("user.create", "key.create", "key.revoke"):
            assert action in audit, action
        assert "test" not in re.findall(r"<td>([^<]*)</td>", audit)  # only the admin's rows
        actions = (await client.get("/admin/audit-entry/list?action=key.revoke&action_op=equals")).text
        assert f"key:{info.prefix}" in actions and "user.create" not in actions


async def test_names_with_html_show_as_text(sec_db: SecureApp) -> None:
    async with signed_in(sec_db) as (client, token):
        evil = '<script>window.__xss=1</script><img src=x onerror="alert(1)">'
        response = await client.post("/admin/identities/keys", data={
            "username": "root", "name": evil, "csrf_token": token})
        assert response.status_code == 200
        for path in ("/admin/identities", "/admin/api-key/list", "/admin/audit-entry/list"):
            page = (await client.get(path)).text
            assert evil not in page and "<script>window.__xss" not in page, path
            assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page, path
        error = await client.post("/admin/models/alias", data={
            "model": "<b>nope</b>", "alias": "production", "version": "1", "csrf_token": token})
        assert error.status_code == 404 and "<b>nope</b>" not in error.text and "&lt;b&gt;nope" in error.text


async def _push(client: httpx.AsyncClient, token: str, directory: Path) -> httpx.Response:
    files = {"archive": ("model.tar.gz", io.BytesIO(pack_to_bytes(directory)), "application/gzip")}
    return await client.post("/admin/models/push", data={"model": "sum", "csrf_token": token}, files=files)


async def _answer(sec: SecureApp, admin_token: str) -> str:
    response = await sec.client.post("/v2/models/sum/infer", json=ZEROS, headers=bearer(admin_token))
    assert response.status_code == 200, response.text
    version: str = response.json()["model_version"]
    return version


async def test_push_promote_roll_back_and_traffic_through_the_admin(sec_db: SecureApp, tmp_path: Path) -> None:
    await sec_db.user("dora", Role.DEPLOYER)
    admin_token = await sec_db.token("root")
    async with signed_in(sec_db, "dora") as (client, token):
        for v in (1, 2):
            response = await _push(client, token, versioned_model(tmp_path, v))
            assert response.status_code == 303, response.text
        page = (await client.get("/admin/models")).text
        assert "Pushed sum version 2." in page and '<tr data-model="sum">' in page
        assert "<td>breast-cancer</td><td>1</td>" in page  # the folder's models, apart
        for version in ("1", "2"):
            response = await client.post("/admin/models/alias", data={
                "model": "sum", "alias": "production", "version": version, "csrf_token": token})
            assert response.status_code == 303
            assert await _answer(sec_db, admin_token) == version
        response = await client.post("/admin/models/rollback", data={"model": "sum", "alias": "production",
                                                                     "csrf_token": token})
        assert response.status_code == 303
        assert await _answer(sec_db, admin_token) == "1"
        page = (await client.get("/admin/models")).text
        assert "rolled back from version 2 to 1" in page and "production → 1" in page

        response = await client.post("/admin/models/traffic", data={
            "model": "sum", "canary_version": "2", "canary_percent": "100", "csrf_token": token})
        assert response.status_code == 303
        assert await _answer(sec_db, admin_token) == "2"
        bad = await client.post("/admin/models/traffic", data={
            "model": "sum", "canary_version": "9", "canary_percent": "50", "csrf_token": token})
        assert bad.status_code == 404 and "9" in bad.text
        worse = await client.post("/admin/models/traffic", data={
            "model": "sum", "canary_version": "2", "canary_percent": "lots", "csrf_token": token})
        assert worse.status_code == 400
        assert await _answer(sec_db, admin_token) == "2"  # the refused changes changed nothing
        changes = (await client.get("/admin/registry-change/list?by=user:dora&by_op=equals")).text
        assert "alias production -&gt; 2" in changes and "rollback production 2 -&gt; 1" in changes
    # Each change is in the audit log too, with the deployer who made it from the admin.
    async with sec_db.store.database.session() as session:
        rows = (await session.execute(select(AuditEntry.action).where(AuditEntry.actor == "user:dora"))).scalars()
        actions = set(rows)
    assert {"model.push", "alias.set", "alias.rollback", "traffic.set"} <= actions, actions


async def test_prediction_log_filters(sec_db: SecureApp) -> None:
    admin_token = await sec_db.token("root")
    for _ in range(3):
        assert (await sec_db.client.post(INFER, json=v2_body(), headers=bearer(admin_token))).status_code == 200
    bad = await sec_db.client.post(INFER, json={"inputs": []}, headers=bearer(admin_token))
    assert bad.status_code == 400
    async with signed_in(sec_db) as (client, _):
        for _ in range(100):
            page = (await client.get("/admin/prediction-record/list?model=breast-cancer&model_op=equals")).text
            if page.count("<td>breast-cancer</td>") >= 4:
                break
            await asyncio.sleep(0.05)
        assert page.count("<td>breast-cancer</td>") == 4 and page.count("<td>user:root</td>") == 4
        errors = (await client.get("/admin/prediction-record/list?status=400&status_op=equals")).text
        assert errors.count("<td>breast-cancer</td>") == 1 and "<td>400</td>" in errors
        none = (await client.get("/admin/prediction-record/list?model=digits&model_op=equals")).text
        assert "<td>breast-cancer</td>" not in none


async def test_tables_are_read_only_and_hide_secrets(sec: SecureApp) -> None:
    await sec.key("root", name="laptop")
    root = await sec.store.get_user("root")
    assert root is not None
    async with signed_in(sec) as (client, token):
        index = (await client.get("/admin/")).text
        assert "Signed in as <strong>root</strong>" in index and "/admin/audit-entry/list" in index
        details = (await client.get(f"/admin/user/details/{root.id}")).text
        assert "root" in details and "argon2" not in details and "password_hash" not in details
        for path in ("/admin/user/details/abc", "/admin/user/details/999", "/admin/nope/list"):
            assert (await client.get(path)).status_code == 404, path
        assert (await client.get("/admin/user/list?sortBy=password_hash")).status_code == 400
        # sqladmin serves a column's text as a file path under the working directory: never here.
        await sec.store.create_key("root", "pyproject.toml", actor=TEST_ACTOR)
        assert Path("pyproject.toml").is_file()
        pk = [k.id for k in await sec.store.list_keys("root") if k.name == "pyproject.toml"][0]
        for kind in ("download", "preview"):
            response = await client.get(f"/admin/api-key/{pk}/name/{kind}/")
            assert response.status_code == 404 and "[project]" not in response.text, kind
        (key,) = [k for k in await sec.store.list_keys("root") if k.name == "laptop"]
        details = (await client.get(f"/admin/api-key/details/{key.id}")).text
        assert key.prefix in details and "secret_hash" not in details
        for identity in ("user", "api-key", "audit-entry", "prediction-record", "model-alias"):
            assert (await client.get(f"/admin/{identity}/create")).status_code == 403, identity
            response = await client.post(f"/admin/{identity}/create", data={"csrf_token": token, "username": "x"})
            assert response.status_code == 403, identity
            assert (await client.get(f"/admin/{identity}/export/csv")).status_code == 403, identity
        response = await client.post(f"/admin/user/edit/{root.id}", data={"csrf_token": token, "role": "user"})
        assert response.status_code == 403
        response = await client.delete(f"/admin/user/delete?pks={root.id}", headers={"X-CSRF-Token": token})
        assert response.status_code == 403
        assert (await sec.store.get_user("root")) == root
        assert len(await sec.store.list_keys()) == 2


async def test_time_range_filter_of_the_logs(sec_db: SecureApp) -> None:
    async with sec_db.store.database.session() as session:
        session.add(AuditEntry(at=datetime.now(UTC) - timedelta(hours=3), actor="old-actor", action="user.create",
                               target="user:old", detail={}))
    async with signed_in(sec_db) as (client, _):
        assert "old-actor" in (await client.get("/admin/audit-entry/list")).text
        assert "old-actor" in (await client.get("/admin/audit-entry/list?at=24h")).text
        recent = (await client.get("/admin/audit-entry/list?at=1h")).text
        assert "old-actor" not in recent and "user:root" in recent


def _total(page: str) -> int:
    match = re.search(r'<strong id="usage-total-requests">(\d+)</strong>', page)
    assert match, page[:2000]
    return int(match.group(1))


async def test_dashboard_counts_requests_per_model_and_key(sec_db: SecureApp) -> None:
    await sec_db.user("alice")
    key = await sec_db.key("alice", name="ci")
    prefix = key.split("_")[0] + "_" + key.split("_")[1]
    for _ in range(3):
        assert (await sec_db.client.post(INFER, json=v2_body(), headers=bearer(key))).status_code == 200
    assert (await sec_db.client.post(INFER, json={"inputs": []}, headers=bearer(key))).status_code == 400
    async with signed_in(sec_db) as (client, _):
        for _ in range(100):
            page = (await client.get("/admin/dashboard")).text
            if _total(page) >= 4:
                break
            await asyncio.sleep(0.05)
        assert _total(page) == 4
        models = re.search(r'<table class="usage-table" id="usage-models">(.*?)</table>', page, re.S)
        assert models and re.search(r'<th scope="row">breast-cancer</th><td class="n">4</td>', models.group(1))
        keys = re.search(r'<table class="usage-table" id="usage-keys">(.*?)</table>', page, re.S)
        assert keys and f"key:{prefix} (user:alice)" in keys.group(1)
        assert '<script src="/ui/static/vendor/uplot/uPlot.iife.min.js"' in page
        assert (await client.get("/ui/static/vendor/uplot/uPlot.iife.min.js")).status_code == 200
        assert _total((await client.get(f"/admin/dashboard?key={prefix}")).text) == 4
        assert _total((await client.get("/admin/dashboard?model=digits")).text) == 0
        bad = await client.get("/admin/dashboard?start=yesterday")
        assert bad.status_code == 400 and "ISO 8601" in bad.text and _total(bad.text) == 4
        for query in ("step_s=soon", "step_s=0", "step_s=99999999999999999999", "model=" + "x" * 300,
                      "start=2026-01-01T00:00:00&end=2026-12-01T00:00:00&step_s=1"):
            assert (await client.get(f"/admin/dashboard?{query}")).status_code == 400, query


async def test_password_attempts_are_rate_limited(examples_repo: Path) -> None:
    async with secure_app(examples_repo, login_rate_limit="3/minute") as sec:
        await sec.user("root", Role.ADMIN)
        for _ in range(3):
            assert (await login(sec.client, "root", "wrong password!")).status_code == 400
        response = await login(sec.client)
        assert response.status_code == 429 and int(response.headers["retry-after"]) > 0
        assert (await sec.client.get("/admin/identities")).status_code == 302
        # The token route counts against the same budget.
        response = await sec.client.post("/api/v1/auth/token", data={"username": "root", "password": PASSWORD})
        assert response.status_code == 429


async def test_session_key_is_made_once_with_mode_0600_and_forged_cookies_fail(sec: SecureApp) -> None:
    secret_file = sec.data_dir / "admin-session-secret"
    assert not secret_file.exists()  # nothing on disk before the first admin request
    async with signed_in(sec) as (client, _):
        assert secret_file.stat().st_mode & 0o777 == 0o600
        cookie = client.cookies["mlgate_admin"]
        payload = cookie.split(".")[0]
        forged = itsdangerous.TimestampSigner("another key of at least thirty-two chars").sign(payload).decode()
    async with sec.client_from("127.0.0.1") as other:
        other.cookies.set("mlgate_admin", forged, domain="mlgate.test", path="/admin")
        assert (await other.get("/admin/identities")).status_code == 302
        other.cookies.set("mlgate_admin", cookie, domain="mlgate.test", path="/admin")
        assert (await other.get("/admin/identities")).status_code == 200


async def test_configured_session_key_and_admin_off(examples_repo: Path) -> None:
    async with secure_app(examples_repo, admin_session_secret="k" * 40) as sec:
        await sec.user("root", Role.ADMIN)
        assert (await login(sec.client)).status_code == 302
        assert not (sec.data_dir / "admin-session-secret").exists()
    async with secure_app(examples_repo, admin_enabled=False) as sec:
        for path in ("/admin/", "/admin/login", "/admin/dashboard"):
            assert (await sec.client.get(path)).status_code == 404, path
