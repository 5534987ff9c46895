"""Swagger UI and ReDoc come from assets installed with the package: every URL in the pages is local."""

from __future__ import annotations

import re

import httpx
import pytest

pytestmark = pytest.mark.anyio


def _urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(r"""url:\s*'([^']+)'""", html)


@pytest.mark.parametrize(("page", "assets"), [
    ("/docs", ["/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"]),
    ("/redoc", ["/docs/assets/redoc.standalone.js"]),
])
async def test_docs_pages_load_only_local_assets(client: httpx.AsyncClient, page: str, assets: list[str]) -> None:
    response = await client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    urls = _urls(response.text)
    assert set(assets) <= set(urls)
    assert all(url.startswith("/") for url in urls), urls
    assert "cdn" not in response.text and "fonts.googleapis" not in response.text
    # The browser may fetch from this origin only, so a link out inside a bundle goes nowhere.
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "img-src 'self' data:" in csp and "connect-src 'self'" in csp
    for asset in assets:
        served = await client.get(asset)
        assert served.status_code == 200 and len(served.content) > 100_000, asset
        assert "javascript" in served.headers["content-type"] or "css" in served.headers["content-type"]


async def test_swagger_ui_has_no_online_validator(client: httpx.AsyncClient) -> None:
    html = (await client.get("/docs")).text
    assert '"validatorUrl": null' in html
    assert "url: '/openapi.json'" in html


async def test_oauth2_redirect_page_and_unknown_asset(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200
    missing = await client.get("/docs/assets/nothing-here.js")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
