"""The admin never builds links from the request's Host header: a forged Host cannot put another site's address
into its pages or redirects (cache poisoning, phishing links). Real app, real HTTP (ASGI), security as shipped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mlgate.auth import Role
from tests.secure import SecureApp, secure_app
from tests.web.test_admin import PAGES, login, signed_in

pytestmark = pytest.mark.anyio

EVIL = {"host": "evil.example"}


@pytest.fixture
async def sec(examples_repo: Path) -> AsyncIterator[SecureApp]:
    async with secure_app(examples_repo) as app:
        await app.user("root", Role.ADMIN)
        yield app


async def test_links_and_redirects_do_not_use_the_host_header(sec: SecureApp) -> None:
    async with sec.client_from("127.0.0.1") as anonymous:
        redirect = await anonymous.get("/admin/models", headers=EVIL)
        assert redirect.status_code in (302, 303, 307), redirect.text
        assert "evil.example" not in redirect.headers["location"], redirect.headers["location"]
        assert redirect.headers["location"].startswith("/admin/"), redirect.headers["location"]
        page = await anonymous.get("/admin/login", headers=EVIL)
        assert page.status_code == 200 and "evil.example" not in page.text
        assert (await login(anonymous)).headers["location"].startswith("/admin/")
    async with signed_in(sec) as (client, _):
        for path in [p for p in PAGES if "details" not in p]:
            page = await client.get(path, headers=EVIL)
            assert page.status_code == 200, (path, page.status_code)
            assert "evil.example" not in page.text, path
            assert 'href="/admin/' in page.text or "href='/admin/" in page.text, path


@pytest.mark.parametrize(("path", "target"), [("/docs/", "/docs"), ("/v2/health/live/", "/v2/health/live"),
                                              ("/admin", "/admin/"), ("/ui", "/ui/")])
async def test_no_redirect_uses_the_host_header(sec: SecureApp, path: str, target: str) -> None:
    # Starlette's trailing-slash redirects are built from the Host header too.
    response = await sec.client.get(path, headers=EVIL)
    assert response.status_code in (301, 302, 307, 308), response.text
    assert response.headers["location"] == target


async def test_head_keeps_the_length_of_get(sec: SecureApp) -> None:
    async with sec.client_from("127.0.0.1") as client:
        page = await client.get("/admin/login")
        css = next(part.split('"')[0] for part in page.text.split('href="')[1:] if part.split('"')[0].endswith(".css"))
        got, head = await client.get(css), await client.head(css)
        assert got.status_code == head.status_code == 200, css
        assert head.headers["content-length"] == got.headers["content-length"] == str(len(got.content))
