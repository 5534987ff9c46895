"""The admin session carried to the playground, over real HTTP (ASGI), security as shipped: a signed-in admin
user gets a short-lived token from ``GET /admin/playground-token`` that calls their closed models; it may only
predict, dies with the logout, and is given only to this server's own pages. The inference routes take no
authority from the admin cookie. Before: the playground knew nothing of the admin session (a signed-in user
had to paste an API key). Also the playground's deep links (200, not 404, for a page its script completes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mlgate.auth import Role
from tests.secure import TEST_ACTOR, SecureApp, bearer, secure_app, v2_body
from tests.web.test_admin import login
from tests.web.test_admin_sessions import copy_of

pytestmark = pytest.mark.anyio

TOKEN = "/admin/playground-token"
OWN_PAGE = {"X-Mlgate-Playground": "1"}
INFER = "/v2/models/breast-cancer/infer"


@pytest.fixture
async def sec(examples_repo: Path) -> AsyncIterator[SecureApp]:
    async with secure_app(examples_repo, playground_token_ttl_s=120) as app:  # breast-cancer: closed
        await app.user("root", Role.ADMIN)
        await app.user("dora", Role.DEPLOYER)
        yield app


async def test_a_signed_in_user_gets_a_token_that_predicts_and_ends_with_the_logout(sec: SecureApp) -> None:
    async with sec.client_from("127.0.0.1") as client:
        assert (await client.get(TOKEN, headers=OWN_PAGE)).json() == {"token": None}  # not signed in
        assert (await login(client, "dora")).status_code == 302
        response = await client.get(TOKEN, headers=OWN_PAGE)
        assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["token_type"] == "bearer" and body["expires_in"] == 120
        assert (body["username"], body["role"]) == ("dora", "deployer")
        token = body["token"]
        assert (await sec.client.post(INFER, json=v2_body())).status_code == 401  # closed to anonymous callers
        assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(token))).status_code == 200
        ready = await sec.client.get("/ui/models/breast-cancer", headers=bearer(token))
        assert ready.status_code == 200 and 'id="model-name">breast-cancer<' in ready.text
        # It may only predict, though dora may deploy: unloading a model with it is refused.
        unload = await sec.client.post("/v2/repository/models/breast-cancer/unload", headers=bearer(token))
        assert unload.status_code == 403, unload.text
        # The logout ends it at once (its exp is minutes away), on a copy of the cookie too.
        async with copy_of(sec, client) as thief:
            assert (await client.get("/admin/logout")).status_code == 302
            assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(token))).status_code == 401
            assert (await thief.get(TOKEN, headers=OWN_PAGE)).json() == {"token": None}


async def test_a_role_change_ends_the_token(sec: SecureApp) -> None:
    async with sec.client_from("127.0.0.1") as client:
        assert (await login(client)).status_code == 302
        token = (await client.get(TOKEN, headers=OWN_PAGE)).json()["token"]
        assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(token))).status_code == 200
        await sec.store.update_user("root", role=Role.DEPLOYER, actor=TEST_ACTOR)  # still allowed to predict
        assert (await sec.client.post(INFER, json=v2_body(), headers=bearer(token))).status_code == 401


async def test_the_token_is_only_for_this_server_s_pages(sec: SecureApp) -> None:
    async with sec.client_from("127.0.0.1") as client:
        assert (await login(client)).status_code == 302
        for headers in ({}, {"X-Mlgate-Playground": "yes"},
                        {**OWN_PAGE, "Sec-Fetch-Site": "cross-site"}, {**OWN_PAGE, "Sec-Fetch-Site": "same-site"}):
            response = await client.get(TOKEN, headers=headers)
            assert response.status_code == 403, headers
            assert response.json() == {"error": response.json()["error"], "code": "csrf_failed",
                                       "field": "x-mlgate-playground"}
            assert "token" not in response.text.replace("playground token", "")
        same = await client.get(TOKEN, headers={**OWN_PAGE, "Origin": "http://mlgate.test",
                                                "Sec-Fetch-Site": "same-origin"})
        assert same.status_code == 200 and same.json()["token"], same.text


async def test_the_admin_cookie_gives_no_authority_on_inference_routes(sec: SecureApp) -> None:
    async with sec.client_from("127.0.0.1") as client:
        assert (await login(client)).status_code == 302
        cookie = "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)
        for path in (INFER, "/v1/models/breast-cancer:predict"):
            body = v2_body() if path == INFER else {"instances": [[0.0] * 30]}
            response = await sec.client.post(path, json=body, headers={"Cookie": cookie})
            assert response.status_code == 401, (path, response.text)


async def test_a_deep_link_answers_200_and_a_name_no_model_can_have_404(sec: SecureApp) -> None:
    # A browser's navigation (no credentials) to a closed model and to a missing one: the same 200 page, which
    # the script completes; nothing tells the two apart.
    closed = await sec.client.get("/ui/models/breast-cancer")
    missing = await sec.client.get("/ui/models/no-such-model")
    assert closed.status_code == missing.status_code == 200
    assert 'id="looking"' in closed.text and 'data-admin-token="/admin/playground-token"' in closed.text
    assert closed.text.replace("breast-cancer", "NAME") == missing.text.replace("no-such-model", "NAME")
    # With credentials (the script's second request), a model the caller may not see is a 404.
    key = await sec.key("root")
    assert (await sec.client.get("/ui/models/no-such-model", headers=bearer(key))).status_code == 404
    # A name no model can have.
    assert (await sec.client.get("/ui/models/-bad name")).status_code == 404
