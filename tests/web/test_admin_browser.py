"""The admin in a real browser (Debian's Chromium, headless, Playwright) against a real ``mlgate serve``.

Sign in, create a key (shown once) and use it, a form whose CSRF token was removed is refused, a key name
holding HTML shows as text, and the dashboard counts requests made just before. Screenshots go to
``test-artifacts/`` (admin.png and dashboard.png are the ones in docs/). Skips without Chromium or
Playwright unless ``MLGATE_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.processes import serve_process
from tests.secure import PASSWORD, bearer, v2_body
from tests.web.conftest import ARTIFACTS, open_page

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

EVIL = '<img src=x onerror="window.__xss=1">laptop'


@pytest.fixture(scope="module")
def server(browser: Browser, examples_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server with security as shipped (no anonymous models) and a first admin ``root``."""
    env = {"MLGATE_ANONYMOUS_MODELS": "[]", "MLGATE_ADMIN_USERNAME": "root", "MLGATE_ADMIN_PASSWORD": PASSWORD,
           "MLGATE_PREDICTION_LOG_INTERVAL_S": "0.05"}
    with serve_process(examples_repo, tmp_path_factory.mktemp("admin-serve") / "serve.log", env) as url:
        yield f"http://{url}"


@pytest.fixture
def page(browser: Browser, server: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page signed in as root; JavaScript errors fail the test; a screenshot is kept."""
    with open_page(browser, request, 1400, 1000) as (tab, errors):
        # A Content-Security-Policy violation (a blocked script, style or font) is logged as a console error; a
        # missing asset is a 404 (the browser's own favicon request aside; the CSRF test's 403 is expected).
        tab.on("console", lambda msg: errors.append(msg.text)
               if msg.type == "error" and "Failed to load resource" not in msg.text else None)
        tab.on("response", lambda r: errors.append(f"{r.status} {r.url}")
               if r.status >= 400 and r.status != 403 and not r.url.endswith("/favicon.ico") else None)
        tab.goto(f"{server}/admin/identities")
        assert tab.url.endswith("/admin/login")
        tab.fill("#username", "root")
        tab.fill("#password", PASSWORD)
        tab.click("button[type=submit]")
        tab.wait_for_selector("#signed-in")
        yield tab


def test_wrong_password_is_refused(browser: Browser, server: str) -> None:
    context = browser.new_context()
    tab = context.new_page()
    tab.goto(f"{server}/admin/")
    tab.fill("#username", "root")
    tab.fill("#password", "not the password")
    tab.click("button[type=submit]")
    assert "Invalid credentials" in tab.locator("#login-error").inner_text()
    tab.goto(f"{server}/admin/identities")
    assert tab.url.endswith("/admin/login")
    context.close()


def test_create_a_key_shown_once_that_works(page: Page, server: str) -> None:
    page.goto(f"{server}/admin/identities")
    page.fill("#key-name", EVIL)
    page.fill("#key-models", "breast-cancer")
    page.click("#create-key button[type=submit]")
    key = page.locator("#created-key").inner_text().strip()
    assert key.startswith("mlg_"), key
    response = httpx.post(f"{server}/v2/models/breast-cancer/infer", json=v2_body(), headers=bearer(key))
    assert response.status_code == 200, response.text
    # The name holding HTML shows as text, and ran nothing.
    assert EVIL in page.locator("#keys").inner_text()
    assert page.evaluate("window.__xss") is None
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin.png"), full_page=True)
    page.goto(f"{server}/admin/identities")
    assert page.locator("#created-key").count() == 0 and key not in page.content()


def test_a_form_without_its_csrf_token_is_refused(page: Page, server: str) -> None:
    page.goto(f"{server}/admin/identities")
    page.fill("#new-username", "mallory")
    page.fill("#new-password", PASSWORD)
    page.select_option("#new-role", "admin")
    page.evaluate("document.querySelector('#create-user input[name=csrf_token]').remove()")
    with page.expect_response(lambda r: r.url.endswith("/admin/identities/users")) as answer:
        page.click("#create-user button[type=submit]")
    assert answer.value.status == 403
    assert "csrf_failed" in page.content()
    # The same post from the page's own session, without the token, is refused too; nothing was created.
    assert page.request.post(f"{server}/admin/identities/users", form={
        "username": "mallory", "password": PASSWORD, "role": "admin"}).status == 403
    page.goto(f"{server}/admin/identities")
    assert "mallory" not in page.locator("#users").inner_text()


def _total(page: Page) -> int:
    return int(page.locator("#usage-total-requests").inner_text())


def test_dashboard_counts_a_request_made_just_before(page: Page, server: str) -> None:
    token = httpx.post(f"{server}/api/v1/auth/token", data={"username": "root", "password": PASSWORD}).json()
    auth = bearer(token["access_token"])
    page.goto(f"{server}/admin/dashboard")
    before = _total(page)
    for i in range(12):
        body = v2_body() if i % 4 else {"inputs": []}  # a few bad requests: 4xx on the chart
        httpx.post(f"{server}/v2/models/breast-cancer/infer", json=body, headers=auth)
    deadline = time.monotonic() + 10
    while True:
        page.goto(f"{server}/admin/dashboard")
        if _total(page) >= before + 12 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert _total(page) == before + 12
    assert "user:root" in page.locator("#usage-keys").inner_text()
    assert "breast-cancer" in page.locator("#usage-models").inner_text()
    for chart in ("#usage-rps", "#usage-latency", "#usage-errors"):
        page.wait_for_selector(f"{chart} .uplot canvas")
    page.click("text=15 min")
    assert _total(page) >= 12
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 1250})  # the whole dashboard, the menu's full height
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"))


def test_every_admin_page_works_under_its_content_security_policy(page: Page, server: str) -> None:
    for path in ("/admin/", "/admin/models", "/admin/identities", "/admin/user/list", "/admin/api-key/list",
                 "/admin/prediction-record/list?model=breast-cancer&model_op=equals", "/admin/audit-entry/list",
                 "/admin/user/details/1", "/admin/dashboard"):
        response = page.goto(f"{server}{path}")
        assert response is not None and response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"], path
        page.wait_for_load_state("networkidle")
    page.goto(f"{server}/admin/audit-entry/list")
    page.click("text=Tables")  # the menu's script (Tabler) runs
    page.wait_for_selector("a[href$='/admin/user/list']", state="visible")
