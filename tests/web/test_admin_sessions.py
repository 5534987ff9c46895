"""Admin sessions end on the server side: a copied session cookie dies with the logout, and with a change of the
user's role; the session stamp is checked on each request. Real app, real HTTP (ASGI), security as shipped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mlgate.auth import Role
from tests.secure import TEST_ACTOR, SecureApp, secure_app
from tests.web.test_admin import login

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sec(examples_repo: Path) -> AsyncIterator[SecureApp]:
    async with secure_app(examples_repo) as app:
        await app.user("root", Role.ADMIN)
        await app.user("dora", Role.DEPLOYER)
        yield app


def copy_of(sec: SecureApp, client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client elsewhere (another address) holding a copy of ``client``'s cookies, as a thief would."""
    thief = sec.client_from("10.9.8.7")
    for cookie in client.cookies.jar:
        thief.cookies.set(cookie.name, cookie.value or "", domain=cookie.domain, path=cookie.path)
    return thief


async def test_logout_ends_a_copied_session(sec: SecureApp) -> None:
    async with sec.client_from("127.0.0.1") as client:
        assert (await login(client)).status_code == 302
        async with copy_of(sec, client) as thief:
            assert (await thief.get("/admin/identities")).status_code == 200  # the copy works while signed in
            assert (await client.get("/admin/logout")).status_code == 302
            after = await thief.get("/admin/identities")
            assert after.status_code == 302 and after.headers["location"].endswith("/admin/login"), after.text
        # Signing in again starts a new, valid session.
        assert (await login(client)).status_code == 302
        assert (await client.get("/admin/identities")).status_code == 200


async def test_a_role_change_ends_the_session(sec: SecureApp) -> None:
    async with sec.client_from("127.0.0.1") as client:
        assert (await login(client, "dora")).status_code == 302
        assert (await client.get("/admin/models")).status_code == 200
        await sec.store.update_user("dora", role=Role.ADMIN, actor=TEST_ACTOR)  # even a promotion
        assert (await client.get("/admin/models")).status_code == 302
        assert (await login(client, "dora")).status_code == 302
        assert (await client.get("/admin/identities")).status_code == 200  # the new role, in a new session
