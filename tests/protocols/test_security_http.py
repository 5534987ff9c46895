"""Identities and hardening over real HTTP: sign-in, key management, audit, groups, headers, CORS, no leaks."""

from __future__ import annotations

import stat
from pathlib import Path

import jwt
import pytest
from sqlalchemy import select

from mlgate.auth import Action, Caller, CallerKind, Role
from mlgate.db.tables.audit import AuditEntry
from mlgate.errors import Forbidden
from tests.secure import PASSWORD, bearer, secure_app, v2_body

pytestmark = pytest.mark.anyio

INFER = "/v2/models/breast-cancer/infer"


async def test_password_sign_in_gives_a_short_lived_token(examples_repo: Path, database_url: str) -> None:
    async with secure_app(examples_repo, database_url=database_url, jwt_ttl_s=120) as sec:
        await sec.user("alice", Role.DEPLOYER)
        response = await sec.client.post("/api/v1/auth/token", data={"username": "alice", "password": PASSWORD})
        assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["token_type"] == "bearer" and body["expires_in"] == 120
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 120 and claims["iss"] == claims["aud"] == "mlgate"
        me = (await sec.client.get("/api/v1/auth/me", headers=bearer(body["access_token"]))).json()
        assert me["user"] == "alice" and me["role"] == "deployer" and me["via"] == "token"
        assert me["actions"] == ["deploy", "predict"]
        assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(body["access_token"]))).status_code == 200
        missing = await sec.client.post("/api/v1/auth/token", data={"username": "alice"})
        assert missing.status_code == 400


async def test_keys_over_http_are_shown_once_listed_by_prefix_and_revoked(
    examples_repo: Path, database_url: str
) -> None:
    async with secure_app(examples_repo, database_url=database_url, trusted_proxies=["127.0.0.1"]) as sec:
        await sec.user("alice")
        await sec.user("bob")
        token = await sec.token("alice")
        headers = {**bearer(token), "X-Forwarded-For": "203.0.113.7", "X-Request-ID": "make-key-1"}
        made = await sec.client.post("/api/v1/keys", json={"name": "laptop", "models": ["breast-cancer"]},
                                     headers=headers)
        assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
        key, prefix = made.json()["key"], made.json()["prefix"]
        assert key.startswith(prefix + "_") and made.json()["actions"] == ["predict"]
        listed = (await sec.client.get("/api/v1/keys", headers=bearer(token))).json()["keys"]
        assert [k["prefix"] for k in listed] == [prefix] and "key" not in listed[0]
        assert key not in str(await sec.store.list_keys())  # only the hash is stored
        assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(key))).status_code == 200
        # bob cannot see or revoke alice's key: the same 404 as for a key that does not exist.
        bob = await sec.token("bob")
        theirs = await sec.client.delete(f"/api/v1/keys/{prefix}", headers=bearer(bob))
        unknown = await sec.client.delete("/api/v1/keys/mlg_000000000000", headers=bearer(bob))
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.text.replace(prefix, "P") == unknown.text.replace("mlg_000000000000", "P")
        assert (await sec.client.get("/api/v1/keys?user=alice", headers=bearer(bob))).status_code == 403
        revoked = await sec.client.delete(f"/api/v1/keys/{prefix}", headers={**headers, "X-Request-ID": "rev-1"})
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(key))).status_code == 401
        async with sec.store.database.session() as session:
            entries = (await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars().all()
        audit = [(e.actor, e.action, e.target, e.client, e.request_id) for e in entries]
        assert ("user:alice", "key.create", f"key:{prefix}", "203.0.113.7", "make-key-1") in audit
        assert ("user:alice", "key.revoke", f"key:{prefix}", "203.0.113.7", "rev-1") in audit
        assert ("test", "user.create", "user:bob", "local", None) in audit
        assert all(key not in str(e.detail) for e in entries)


async def test_admins_manage_everyones_keys(examples_repo: Path) -> None:
    async with secure_app(examples_repo) as sec:
        await sec.user("root", Role.ADMIN)
        await sec.user("alice")
        token = await sec.token("root")
        made = await sec.client.post("/api/v1/keys", json={"name": "for alice", "user": "alice"}, headers=bearer(token))
        assert made.status_code == 201 and made.json()["user"] == "alice"
        everyone = (await sec.client.get("/api/v1/keys", headers=bearer(token))).json()["keys"]
        assert {k["user"] for k in everyone} == {"alice"}
        prefix = made.json()["prefix"]
        assert (await sec.client.delete(f"/api/v1/keys/{prefix}", headers=bearer(token))).status_code == 200
        alice = await sec.token("alice")
        tiered = await sec.client.post("/api/v1/keys", json={"name": "x", "tier": "anonymous"}, headers=bearer(alice))
        assert tiered.status_code == 403


async def test_last_used_is_recorded_without_a_write_per_request(examples_repo: Path) -> None:
    async with secure_app(examples_repo) as sec:
        await sec.user("alice")
        key = await sec.key("alice")
        assert (await sec.store.list_keys())[0].last_used_at is None
        await sec.client.post(INFER, json=v2_body(), headers=bearer(key))
        first = (await sec.store.list_keys())[0].last_used_at
        assert first is not None
        for _ in range(3):
            await sec.client.post(INFER, json=v2_body(), headers=bearer(key))
        assert (await sec.store.list_keys())[0].last_used_at == first  # within a minute: not rewritten


async def test_groups_grant_models_when_users_get_none_by_default(examples_repo: Path) -> None:
    from tests.secure import TEST_ACTOR

    async with secure_app(examples_repo, user_models=[]) as sec:
        await sec.store.create_group("cancer-team", ["breast-*"], actor=TEST_ACTOR)
        await sec.user("alice", groups=("cancer-team",))
        await sec.user("bob")
        alice, bob = await sec.token("alice"), await sec.token("bob")
        assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(alice))).status_code == 200
        assert (await sec.client.get("/v2/models/digits", headers=bearer(alice))).status_code == 403
        assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(bob))).status_code == 403
        await sec.store.add_to_group("bob", "cancer-team", actor=TEST_ACTOR)
        assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(bob))).status_code == 200


async def test_first_admin_from_settings_is_created_once_and_never_overwritten(examples_repo: Path,
                                                                              tmp_path: Path) -> None:
    async with secure_app(examples_repo, data_dir=tmp_path, admin_username="boss",
                          admin_password="first password") as sec:
        token = await sec.token("boss", "first password")
        assert (await sec.client.get("/api/v1/keys", headers=bearer(token))).status_code == 200
    async with secure_app(examples_repo, data_dir=tmp_path, admin_username="boss",
                          admin_password="second password") as sec:
        assert (await sec.client.post("/api/v1/auth/token", data={"username": "boss", "password": "second password"}
                                      )).status_code == 401
        await sec.token("boss", "first password")
        user = await sec.store.get_user("boss")
        assert user is not None and user.role is Role.ADMIN
    async with secure_app(examples_repo) as sec:  # no settings: no user at all, hence no default password
        assert await sec.store.count_users() == 0


async def test_the_token_key_is_generated_once_private_and_shared_through_data_dir(examples_repo: Path,
                                                                                  tmp_path: Path) -> None:
    async with secure_app(examples_repo, data_dir=tmp_path) as one:
        await one.user("alice")
        token = await one.token("alice")
    secret_file = tmp_path / "jwt-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600 and len(secret_file.read_text().strip()) >= 32
    async with secure_app(examples_repo, data_dir=tmp_path) as two:  # a restart, or a replica on the same disk
        assert (await two.client.post(INFER, json=v2_body(), headers=bearer(token))).status_code == 200
    async with secure_app(examples_repo, data_dir=tmp_path, jwt_secret="y" * 40) as three:
        assert (await three.client.post(INFER, json=v2_body(), headers=bearer(token))).status_code == 401


async def test_security_headers_on_api_errors_and_docs(examples_repo: Path) -> None:
    async with secure_app(examples_repo, hsts_max_age_s=3600) as sec:
        for response in (await sec.client.post(INFER, json=v2_body()), await sec.client.get("/v2/health/live")):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
            assert response.headers["strict-transport-security"] == "max-age=3600; includeSubDomains"
        docs = await sec.client.get("/docs")
        assert docs.status_code == 200 and "frame-ancestors 'none'" in docs.headers["content-security-policy"]
        schemes = (await sec.client.get("/openapi.json")).json()["components"]["securitySchemes"]
        assert schemes["HTTPBearer"]["scheme"] == "bearer"
    async with secure_app(examples_repo, public_docs=False) as sec:
        assert (await sec.client.get("/docs")).status_code == 404
        assert (await sec.client.get("/openapi.json")).status_code == 404
        assert "strict-transport-security" not in (await sec.client.get("/v2/health/live")).headers


async def test_cors_is_closed_by_default_and_opens_per_origin(examples_repo: Path) -> None:
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    async with secure_app(examples_repo) as sec:
        response = await sec.client.options(INFER, headers=preflight)
        assert "access-control-allow-origin" not in response.headers
        simple = await sec.client.get("/v2/health/live", headers={"Origin": "https://app.example.com"})
        assert "access-control-allow-origin" not in simple.headers
    async with secure_app(examples_repo, cors_origins=["https://app.example.com"]) as sec:
        allowed = await sec.client.options(INFER, headers=preflight)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        evil = await sec.client.options(INFER, headers={**preflight, "Origin": "https://evil.example"})
        assert evil.headers.get("access-control-allow-origin") != "https://evil.example"
        limited = await sec.client.get("/v2/health/live", headers={"Origin": "https://app.example.com"})
        assert "ratelimit-remaining" in limited.headers["access-control-expose-headers"].lower()


async def test_error_bodies_never_carry_tracebacks_or_internal_paths(examples_repo: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(examples_repo / "breast-cancer", tmp_path / "breast-cancer")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.toml").write_text('name = "broken"\nruntime = "sklearn"\nartifact = "gone.joblib"\n')
    async with secure_app(tmp_path, rate_limit_tiers={"default": {"requests": "4/minute"}}) as sec:
        await sec.user("alice")
        key = await sec.key("alice")
        scoped = await sec.key("alice", models=["digits"])
        responses = [
            await sec.client.post(INFER, json=v2_body()),
            await sec.client.post(INFER, json=v2_body(), headers=bearer("mlg_nope")),
            await sec.client.post(INFER, json=v2_body(), headers=bearer(scoped)),
            await sec.client.post(INFER, content=b"{not json", headers=bearer(key)),
            await sec.client.post(INFER, json={"inputs": [{"name": "features"}]}, headers=bearer(key)),
            await sec.client.post("/v2/models/broken/infer", json=v2_body(), headers=bearer(key)),
            await sec.client.get("/v2/models/nope", headers=bearer(key)),
            await sec.client.post("/api/v1/auth/token", data={"username": "x", "password": "y"}),
        ]
        responses += [await sec.client.post(INFER, json=v2_body(), headers=bearer(key)) for _ in range(4)]
    assert {r.status_code for r in responses} >= {400, 401, 403, 404, 429, 503}
    for response in responses:
        for leak in ("Traceback", str(tmp_path), "/tmp/", "site-packages", ".py", "sqlalchemy", "gone.joblib"):
            assert leak not in response.text, (response.status_code, response.text)


def test_code_running_artifacts_need_the_deploy_right() -> None:
    from mlgate.auth import Policy

    policy = Policy()
    user = Caller(CallerKind.KEY, "1.2.3.4", user_id=1, username="u", role=Role.USER, key_id=1,
                  actions=frozenset({Action.PREDICT}), model_scopes=(("*",),))
    deployer = Caller(CallerKind.TOKEN, "1.2.3.4", user_id=2, username="d", role=Role.DEPLOYER,
                      actions=frozenset({Action.PREDICT, Action.DEPLOY}), model_scopes=(("churn-*",),))
    for artifact in ("model.joblib", "model.PKL", "nested/model.pickle", "model.py", "weights.pt"):
        with pytest.raises(Forbidden):
            policy.check_artifact(user, "churn-1", artifact)
        policy.check_artifact(deployer, "churn-1", artifact)
        with pytest.raises(Forbidden):
            policy.check_artifact(deployer, "fraud", artifact)  # deploy right, but not on this model
    for artifact in ("model.onnx", "model.skops"):
        policy.check_artifact(user, "churn-1", artifact)


def test_a_caller_without_scopes_may_use_nothing() -> None:
    bare = Caller(CallerKind.KEY, "1.2.3.4", user_id=1, username="u", role=Role.ADMIN,
                  actions=frozenset(Action))
    assert not bare.may(Action.PREDICT, "breast-cancer") and not bare.may(Action.ADMIN)
    restricted = Caller(CallerKind.TOKEN, "1.2.3.4", user_id=1, username="u", role=Role.USER,
                        actions=frozenset({Action.PREDICT}), model_scopes=((),))
    assert not restricted.may(Action.PREDICT, "breast-cancer")


async def test_playground_and_openapi_name_only_models_the_caller_may_use(examples_repo: Path) -> None:
    async with secure_app(examples_repo, anonymous_models=["digits"]) as sec:
        listing = await sec.client.get("/ui/")
        assert listing.status_code == 200
        assert "/ui/models/digits" in listing.text and "breast-cancer" not in listing.text
        # A deep link without credentials answers the same page for a closed model and a missing one (the page
        # then asks again with the tab's key or the admin session), so neither is revealed.
        closed = await sec.client.get("/ui/models/breast-cancer")
        unknown = await sec.client.get("/ui/models/no-such-model")
        assert closed.status_code == unknown.status_code == 200
        assert closed.text.replace("breast-cancer", "X") == unknown.text.replace("no-such-model", "X")
        assert (await sec.client.get("/ui/models/digits")).status_code == 200
        paths = (await sec.client.get("/openapi.json")).json()["paths"]
        assert "/v2/models/digits/infer" in paths
        assert not any("breast-cancer" in path for path in paths)
        # With a key, the list is the key's models.
        await sec.user("alice")
        key = await sec.key("alice", models=["breast-cancer"])
        keyed = await sec.client.get("/ui/", headers=bearer(key))
        assert "/ui/models/breast-cancer" in keyed.text and "/ui/models/digits" not in keyed.text
        assert (await sec.client.get("/ui/", headers=bearer("mlg_bad"))).status_code == 401
