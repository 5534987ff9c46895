"""Bypass attempts against the real app over HTTP, on SQLite and on PostgreSQL: each must fail closed.

Missing, malformed, wrong, expired and revoked keys; keys scoped to another model or action; forged access
tokens; spoofed X-Forwarded-For; encoded and look-alike model names; a rate limit probed across protocols.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from sqlalchemy import update

from mlgate.auth import Action, Role
from mlgate.db.base import utcnow
from mlgate.db.tables.identity import ApiKey
from tests.secure import ROWS, TEST_ACTOR, SecureApp, bearer, secure_app, v1_body, v2_body

pytestmark = pytest.mark.anyio

INFER = "/v2/models/breast-cancer/infer"
PREDICT = "/v1/models/breast-cancer:predict"
MODEL_ROUTES = [
    ("POST", INFER), ("POST", "/v2/models/breast-cancer/versions/1/infer"), ("GET", "/v2/models/breast-cancer"),
    ("GET", "/v2/models/breast-cancer/ready"), ("GET", "/v1/models/breast-cancer"), ("POST", PREDICT),
    ("POST", "/v1/models/breast-cancer/versions/1:predict"),
]


def _body(path: str) -> dict[str, object] | None:
    if path.endswith(":predict"):
        return v1_body()
    return v2_body() if path.endswith("/infer") else None


async def _call(client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str] | None = None
                ) -> httpx.Response:
    return await client.request(method, path, json=_body(path), headers=headers)


@pytest.fixture
async def sec(examples_repo: Path, database_url: str) -> SecureApp:
    """The app on SQLite, then on PostgreSQL, with one user (alice, role user)."""
    async with secure_app(examples_repo, database_url=database_url) as app:
        await app.user("alice")
        yield app  # type: ignore[misc]


@pytest.fixture
async def sqlite_sec(examples_repo: Path) -> SecureApp:
    """The same on SQLite only, for tests where the database plays no part (names, counters)."""
    async with secure_app(examples_repo) as app:
        await app.user("alice")
        yield app  # type: ignore[misc]


def _assert_401(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["code"] == code
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_missing_credentials_are_401_everywhere_but_health_and_metrics(sec: SecureApp) -> None:
    for method, path in [*MODEL_ROUTES, ("GET", "/v2"), ("GET", "/api/v1/keys"), ("GET", "/api/v1/auth/me")]:
        _assert_401(await _call(sec.client, method, path), "unauthenticated")
    assert (await sec.client.get("/v2/health/live")).status_code == 200
    assert (await sec.client.get("/v2/health/ready")).status_code == 200
    metrics = await sec.client.get("/metrics")
    assert metrics.status_code == 200 and "mlgate_auth_failures" in metrics.text


async def test_a_valid_key_works_on_every_model_route(sec: SecureApp) -> None:
    key = await sec.key("alice")
    for method, path in MODEL_ROUTES:
        response = await _call(sec.client, method, path, bearer(key))
        assert response.status_code == 200, (path, response.text)
    # The scheme name is case-insensitive (RFC 7235).
    assert (await sec.client.post(INFER, json=v2_body(), headers={"Authorization": f"bearer {key}"})).status_code == 200


MALFORMED = [
    "Bearer", "Bearer ", "Basic YWxpY2U6cGFzc3dvcmQ=", "Token {key}", "Bearer {key} extra", "{key}",
    "Bearer mlg_123", "Bearer mlg_0123456789ab_short", "Bearer not-a-key.or-token", "Bearer a.b.c",
    "Bearer {key}\u0000",
]


async def test_malformed_credentials_are_401_never_anonymous(sec: SecureApp) -> None:
    key = await sec.key("alice")
    # Open the model to anonymous callers: a malformed header must still not fall back to anonymous.
    sec.app.state.mlgate.security.policy.anonymous_models = ("breast-cancer",)
    assert (await sec.client.post(INFER, json=v2_body())).status_code == 200
    for header in MALFORMED:
        value = header.format(key=key).encode("latin-1")
        response = await sec.client.post(INFER, json=v2_body(), headers=[(b"authorization", value)])
        assert response.status_code == 401, header
        _assert_401(response, "invalid_credentials")


async def test_two_authorization_headers_are_refused(sec: SecureApp) -> None:
    key = await sec.key("alice")
    headers = httpx.Headers([("Authorization", f"Bearer {key}"), ("Authorization", f"Bearer {key}")])
    _assert_401(await sec.client.post(INFER, json=v2_body(), headers=headers), "invalid_credentials")


async def test_wrong_secret_with_a_real_prefix_is_401(sec: SecureApp) -> None:
    key = await sec.key("alice")
    prefix, secret = key[:16], key[17:]
    forged = f"{prefix}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    _assert_401(await sec.client.post(INFER, json=v2_body(), headers=bearer(forged)), "invalid_credentials")
    unknown = f"mlg_{'f' * 12}_{secret}"
    _assert_401(await sec.client.post(INFER, json=v2_body(), headers=bearer(unknown)), "invalid_credentials")


async def test_expired_and_revoked_keys_are_401_at_once(sec: SecureApp) -> None:
    expiring = await sec.key("alice", expires_at=utcnow() + timedelta(hours=1))
    revoked = await sec.key("alice", name="to revoke")
    for key in (expiring, revoked):
        assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(key))).status_code == 200
    async with sec.store.database.session() as session:  # the hour passes
        await session.execute(update(ApiKey).where(ApiKey.prefix == expiring[:16])
                              .values(expires_at=utcnow() - timedelta(seconds=1)))
    await sec.store.revoke_key(revoked[:16], actor=TEST_ACTOR)
    for key in (expiring, revoked):
        for method, path in MODEL_ROUTES:
            _assert_401(await _call(sec.client, method, path, bearer(key)), "invalid_credentials")
    listed = {k.prefix: k for k in await sec.store.list_keys("alice")}
    assert listed[revoked[:16]].revoked_at is not None


async def test_deactivated_user_keys_and_tokens_are_401(sec: SecureApp) -> None:
    from mlgate.db.tables.identity import User

    key = await sec.key("alice")
    token = await sec.token("alice")
    async with sec.store.database.session() as session:
        await session.execute(update(User).where(User.username == "alice").values(is_active=False))
    _assert_401(await sec.client.post(INFER, json=v2_body(), headers=bearer(key)), "invalid_credentials")
    _assert_401(await sec.client.post(INFER, json=v2_body(), headers=bearer(token)), "invalid_credentials")


async def test_key_scoped_to_another_model_gets_403_that_does_not_reveal_existence(sec: SecureApp) -> None:
    key = await sec.key("alice", models=["digits"])
    forbidden = await sec.client.post(INFER, json=v2_body(), headers=bearer(key))
    unknown = await sec.client.post("/v2/models/no-such-model/infer", json=v2_body(), headers=bearer(key))
    assert forbidden.status_code == unknown.status_code == 403
    assert forbidden.json()["code"] == unknown.json()["code"] == "forbidden"
    assert forbidden.text.replace("breast-cancer", "X") == unknown.text.replace("no-such-model", "X")
    for method, path in MODEL_ROUTES:
        assert (await _call(sec.client, method, path, bearer(key))).status_code == 403, path
    # The models it is scoped to still work, and a pattern scope matches by whole name only.
    assert (await sec.client.get("/v2/models/digits", headers=bearer(key))).status_code == 200
    pattern = await sec.key("alice", models=["breast-*"])
    assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(pattern))).status_code == 200
    assert (await sec.client.get("/v2/models/digits", headers=bearer(pattern))).status_code == 403
    # A caller who may see any model gets the honest 404 for an unknown one.
    full = await sec.key("alice")
    assert (await sec.client.get("/v2/models/no-such-model", headers=bearer(full))).status_code == 404


async def test_anonymous_gets_the_same_401_for_existing_and_unknown_models(sec: SecureApp) -> None:
    existing = await sec.client.post(INFER, json=v2_body())
    unknown = await sec.client.post("/v2/models/no-such-model/infer", json=v2_body())
    assert existing.status_code == unknown.status_code == 401
    assert existing.text == unknown.text


async def test_key_scoped_to_another_action_gets_403(sec: SecureApp) -> None:
    await sec.user("root", Role.ADMIN)
    admin_only = await sec.key("root", actions=[Action.ADMIN])
    response = await sec.client.post(INFER, json=v2_body(), headers=bearer(admin_only))
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    predict_only = await sec.key("root", actions=[Action.PREDICT])
    assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(predict_only))).status_code == 200
    # Listing everyone's keys needs the admin right: the predict-only key of an admin does not have it.
    assert (await sec.client.get("/api/v1/keys", headers=bearer(predict_only))).status_code == 403
    assert (await sec.client.get("/api/v1/keys", headers=bearer(admin_only))).status_code == 200


async def test_user_role_cannot_mint_a_wider_key_and_a_key_cannot_mint_keys(sec: SecureApp) -> None:
    from mlgate.errors import BadRequest

    with pytest.raises(BadRequest):
        await sec.key("alice", actions=[Action.DEPLOY])
    key = await sec.key("alice")
    response = await sec.client.post("/api/v1/keys", json={"name": "more"}, headers=bearer(key))
    assert response.status_code == 403
    token = await sec.token("alice")
    made = await sec.client.post("/api/v1/keys", json={"name": "more", "actions": ["deploy"]},
                                 headers=bearer(token))
    assert made.status_code == 400 and made.json()["field"] == "actions"


def _secret(sec: SecureApp) -> str:
    return (sec.data_dir / "jwt-secret").read_text().strip()


async def test_forged_access_tokens_are_401(sec: SecureApp) -> None:
    await sec.user("root", Role.ADMIN)
    token = await sec.token("alice")
    assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(token))).status_code == 200
    claims = jwt.decode(token, options={"verify_signature": False})
    root_id = (await sec.store.get_user("root")).id  # type: ignore[union-attr]
    now = int(time.time())
    header, payload, signature = token.split(".")
    tampered_payload = jwt.utils.base64url_encode(
        jwt.api_jws.json.dumps({**claims, "sub": str(root_id)}, separators=(",", ":")).encode()).decode()
    none_header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    forged = {
        "alg none": f"{none_header}.{payload}.",
        "alg none, admin": f"{none_header}.{tampered_payload}.",
        "wrong key": jwt.encode({**claims, "sub": str(root_id)}, "x" * 64, algorithm="HS256"),
        "tampered claims": f"{header}.{tampered_payload}.{signature}",
        "expired": jwt.encode({**claims, "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}, _secret(sec),
                              algorithm="HS256"),
        "other algorithm": jwt.encode(claims, _secret(sec), algorithm="HS512"),
        "wrong audience": jwt.encode({**claims, "aud": "someone-else"}, _secret(sec), algorithm="HS256"),
        "no expiry": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, _secret(sec), algorithm="HS256"),
        "signature stripped": f"{header}.{payload}.",
    }
    for what, value in forged.items():
        response = await sec.client.post(INFER, json=v2_body(), headers=bearer(value))
        assert response.status_code == 401, what
        assert response.json()["code"] == "invalid_credentials", what
    # A token signed with the server's real key but for a user id that does not exist is refused too.
    ghost = jwt.encode({**claims, "sub": "999999"}, _secret(sec), algorithm="HS256")
    _assert_401(await sec.client.post(INFER, json=v2_body(), headers=bearer(ghost)), "invalid_credentials")


async def test_wrong_passwords_and_unknown_users_get_the_same_answer(sec: SecureApp) -> None:
    wrong = await sec.client.post("/api/v1/auth/token", data={"username": "alice", "password": "nope nope"})
    ghost = await sec.client.post("/api/v1/auth/token", data={"username": "ghost", "password": "nope nope"})
    assert wrong.status_code == ghost.status_code == 401
    assert wrong.text == ghost.text


async def test_spoofed_x_forwarded_for_from_an_untrusted_peer_does_not_change_the_bucket(examples_repo: Path) -> None:
    tiers = {"anonymous": {"requests": "3/minute"}}
    async with secure_app(examples_repo, anonymous_models=["breast-cancer"], rate_limit_tiers=tiers) as sec:
        codes = []
        for i in range(5):
            headers = {"X-Forwarded-For": f"198.51.100.{i}", "X-Real-IP": f"198.51.100.{i}"}
            codes.append((await sec.client.post(INFER, json=v2_body(), headers=headers)).status_code)
        assert codes == [200, 200, 200, 429, 429]
    # The same requests through a configured trusted proxy are counted per forwarded client.
    async with secure_app(examples_repo, anonymous_models=["breast-cancer"], rate_limit_tiers=tiers,
                          trusted_proxies=["10.0.0.0/8"]) as sec, \
            sec.client_from("10.1.2.3") as proxy:
        for i in range(5):
            # A client-supplied entry left of the proxy's own is ignored: the proxy appended the real one.
            headers = {"X-Forwarded-For": f"203.0.113.66, 198.51.100.{i}"}
            assert (await proxy.post(INFER, json=v2_body(), headers=headers)).status_code == 200
        same = {"X-Forwarded-For": "198.51.100.0"}
        assert [(await proxy.post(INFER, json=v2_body(), headers=same)).status_code for _ in range(3)] == [
            200, 200, 429]


TRICKS = [
    "%2e%2e", "%2E%2E", "%2e", "%2e%2e%2fdigits", "breast-cancer%2F..%2Fdigits", "BREAST-CANCER", "Breast-Cancer",
    "bre%D0%B0st-cancer",  # Cyrillic a
    "breast%E2%80%90cancer",  # U+2010 hyphen
    "%EF%BD%82reast-cancer",  # fullwidth b
    "breast-cancer%0A", "breast-cancer%00", "breast-cancer%20", "%20breast-cancer", "breast-cancer.",
    "-breast-cancer", "breast-cancer%3Bdigits", "*", "breast-*",
]


async def test_encoded_and_look_alike_model_names_never_reach_a_model(sqlite_sec: SecureApp) -> None:
    sec = sqlite_sec
    scoped = await sec.key("alice", models=["breast-cancer"])
    sec.app.state.mlgate.security.policy.anonymous_models = ("breast-cancer",)
    for name in TRICKS:
        for method, path in (("POST", f"/v2/models/{name}/infer"), ("POST", f"/v1/models/{name}:predict"),
                             ("GET", f"/v2/models/{name}"), ("GET", f"/v1/models/{name}")):
            body = v1_body() if path.endswith(":predict") else v2_body()
            anonymous = await sec.client.request(method, path, json=body)
            keyed = await sec.client.request(method, path, json=body, headers=bearer(scoped))
            for response in (anonymous, keyed):
                assert response.status_code in (401, 403, 404), (path, response.status_code, response.text)
                assert "predictions" not in response.text and "outputs" not in response.text
                assert "Traceback" not in response.text and "/tmp/" not in response.text
            assert anonymous.status_code in (401, 404), path  # anonymous learns nothing more than "sign in"


async def test_the_plain_encoding_of_a_valid_name_is_the_same_model(sqlite_sec: SecureApp) -> None:
    sec = sqlite_sec
    scoped = await sec.key("alice", models=["breast-cancer"])
    response = await sec.client.post("/v2/models/breast%2Dcancer/infer", json=v2_body(), headers=bearer(scoped))
    assert response.status_code == 200 and response.json()["model_name"] == "breast-cancer"


async def test_invalid_version_names_are_404_after_authorization(sqlite_sec: SecureApp) -> None:
    sec = sqlite_sec
    key = await sec.key("alice")
    for version in ("%2e%2e", "1%0A", "%E2%91%A0", "1%20"):
        response = await sec.client.post(f"/v2/models/breast-cancer/versions/{version}/infer", json=v2_body(),
                                         headers=bearer(key))
        assert response.status_code == 404, (version, response.text)
        assert (await sec.client.post(f"/v2/models/breast-cancer/versions/{version}/infer",
                                      json=v2_body())).status_code == 401
    # An encoded slash makes a path no route matches: 404 for everyone, before any model is looked at.
    for headers in (bearer(key), None):
        response = await sec.client.post("/v2/models/breast-cancer/versions/1%2F..%2F2/infer", json=v2_body(),
                                         headers=headers)
        assert response.status_code == 404 and response.json()["code"] == "not_found"


async def test_rate_limit_is_shared_across_v1_v2_versions_and_encodings(examples_repo: Path) -> None:
    # Hour windows: the sliding window weights the previous window down, so with minute windows a run slowed
    # past a window boundary could let a call through that this test expects refused.
    async with secure_app(examples_repo, rate_limit_tiers={"default": {"requests": "4/hour"}}) as sec:
        await sec.user("alice")
        key = await sec.key("alice")
        probes = [("POST", INFER), ("POST", PREDICT), ("POST", "/v2/models/breast%2Dcancer/versions/1/infer"),
                  ("POST", "/v1/models/breast-cancer/versions/1:predict")]
        for method, path in probes:
            assert (await _call(sec.client, method, path, bearer(key))).status_code == 200, path
        for method, path in [*MODEL_ROUTES, ("POST", "/v2/models/breast%2Dcancer/infer")]:
            response = await _call(sec.client, method, path, bearer(key))
            assert response.status_code == 429, path
            assert response.json()["code"] == "rate_limited"
        # Another model has its own counter. A second key of the same user shares the user's budget (more
        # keys do not multiply a user's limits); another user has a budget of their own.
        assert (await sec.client.get("/v2/models/digits", headers=bearer(key))).status_code == 200
        second = await sec.key("alice", name="second")
        assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(second))).status_code == 429
        await sec.user("bob")
        bobs = await sec.key("bob")
        assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(bobs))).status_code == 200


async def test_rows_limit_is_shared_across_v1_and_v2(examples_repo: Path) -> None:
    # An hour window (see above): 6 rows counted in a previous minute window could weigh only ~4 under load.
    async with secure_app(examples_repo, rate_limit_tiers={"default": {"rows": "8/hour"}}) as sec:
        await sec.user("alice")
        key = await sec.key("alice")
        assert len(ROWS) == 3
        assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(key))).status_code == 200
        assert (await sec.client.post(PREDICT, json=v1_body(), headers=bearer(key))).status_code == 200
        over = await sec.client.post(PREDICT, json=v1_body(), headers=bearer(key))  # 9 rows > 8
        assert over.status_code == 429 and "rows" in over.json()["error"]
        over_v2 = await sec.client.post(INFER, json=v2_body(), headers=bearer(key))
        assert over_v2.status_code == 429
        one_row = await sec.client.post(INFER, json=v2_body(ROWS[:1]), headers=bearer(key))
        assert one_row.status_code == 200  # 7 + 1 = 8 still fits


async def test_a_bearer_value_that_is_no_mlgate_credential_is_anonymous(sec: SecureApp) -> None:
    # What SDKs that always send a key carry (openai's api_key="unused", an sk-... key): no mlgate credential,
    # so the caller is anonymous: served where anonymous callers are, 401 elsewhere, never more.
    for value in ("unused", "sk-proj-0123456789abcdef"):
        closed = await sec.client.post(INFER, json=v2_body(), headers=bearer(value))
        _assert_401(closed, "unauthenticated")
        assert (await sec.client.get("/api/v1/models", headers=bearer(value))).status_code == 401
    sec.app.state.mlgate.security.policy.anonymous_models = ("breast-cancer",)
    for value in ("unused", "sk-proj-0123456789abcdef"):
        assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(value))).status_code == 200
        assert (await sec.client.post("/v2/models/digits/infer", json=v2_body(),
                                      headers=bearer(value))).status_code == 401
