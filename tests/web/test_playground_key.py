"""The playground with an API key, in a real browser (Debian's Chromium, headless, driven by Playwright).

A real ``mlgate serve`` opens only digits to anonymous callers: breast-cancer is closed. A browser without a
key sees digits only; with a key typed into the field at the top of the page (kept in sessionStorage, sent
as ``Authorization: Bearer`` to this origin only) it sees and uses breast-cancer; without it, a prediction
shows the 401 clearly. Signed in to the admin, the browser needs no key: the playground uses the session's
short-lived token, until the logout. Deep links answer 200; the example button fills the form with the
manifest's example row. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import joblib
import pytest
from sklearn.datasets import load_breast_cancer

from mlgate.predlog.usage import UsageReport
from mlgate.web.playground import templates
from tests.processes import serve_process
from tests.web.conftest import ARTIFACTS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("key-web-data")


@pytest.fixture(scope="module")
def keys(data_dir: Path) -> str:
    """API keys of a user and of an admin, made with the CLI (its own process: Playwright's loop runs in this one)."""
    env = {**os.environ, "MLGATE_DATA_DIR": str(data_dir)}

    def mlgate(*args: str, stdin: str = "") -> str:
        done = subprocess.run([sys.executable, "-m", "mlgate", *args], input=stdin, capture_output=True, text=True,
                              timeout=120, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    mlgate("users", "create", "ada", "--password-stdin", stdin="ada's password\n")
    mlgate("users", "create", "root", "--role", "admin", "--password-stdin", stdin="root's password\n")
    keys = [mlgate("keys", "create", "--user", user, "--name", "playground", "--plain").strip()
            for user in ("ada", "root")]
    return " ".join(keys)


@pytest.fixture(scope="module")
def api_key(keys: str) -> str:
    """ada's key (a user)."""
    return keys.split()[0]


@pytest.fixture(scope="module")
def admin_key(keys: str) -> str:
    """root's key (an admin)."""
    return keys.split()[1]


@pytest.fixture(scope="module")
def server(browser: Browser, examples_repo: Path, data_dir: Path, keys: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("serve-key") / "serve.log"
    env = {"MLGATE_DATA_DIR": str(data_dir), "MLGATE_ANONYMOUS_MODELS": '["digits"]'}
    with serve_process(examples_repo, log_path, env) as url:
        yield f"http://{url}"


def _use_key(page: Page, key: str) -> None:
    page.fill("#api-key", key)
    page.click("#api-key-use")


def test_a_closed_model_is_used_with_a_key_and_refused_without(page: Page, server: str, examples_repo: Path,
                                                                api_key: str) -> None:
    # Without a key: only the public model is listed, and the closed one looks like no model at all.
    page.goto(f"{server}/ui/")
    page.wait_for_selector("tr[data-model='digits']")
    assert page.locator("tr[data-model='breast-cancer']").count() == 0
    answer = page.goto(f"{server}/ui/models/breast-cancer")
    assert answer is not None and answer.status == 200  # a deep link the page's script completes
    page.wait_for_selector("#not-found-box:not([hidden])")
    assert page.text_content("h1") == "Not found"

    # The key, typed on that page: it becomes the model's page.
    _use_key(page, api_key)
    page.wait_for_selector("#model-name")
    assert page.text_content("#model-name") == "breast-cancer"
    assert page.text_content("#api-key-state") == "Using your API key"
    assert page.input_value("#api-key") == ""  # the secret is not left in the field
    assert page.evaluate("() => [localStorage.length, sessionStorage.getItem('mlgate.apiKey')]") == [0, api_key]

    data = load_breast_cancer().data
    model = joblib.load(examples_repo / "breast-cancer" / "model.joblib")
    row = data[0]
    fields = page.locator("fieldset[data-index='0'] table.features tbody input")
    for i, value in enumerate(row):
        fields.nth(i).fill(repr(float(value)))
    with page.expect_request(lambda r: r.url.endswith("/infer")) as sent:
        page.click("#predict")
    assert sent.value.headers["authorization"] == f"Bearer {api_key}"
    page.wait_for_selector(".predicted-label")
    predicted = int(model.predict(row[None])[0])
    assert page.text_content(".predicted-label") == ["malignant", "benign"][predicted]
    proba = model.predict_proba(row[None])[0]
    assert page.text_content(".predicted-probability") == f"{proba[predicted]:.4f}"

    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "playground_with_key.png"))

    # The snippets name the key by its environment variable, never the secret, and work as shown.
    curl = page.text_content("#snippet-curl") or ""
    python = page.text_content("#snippet-python") or ""
    assert "$MLGATE_API_KEY" in curl and 'os.environ["MLGATE_API_KEY"]' in python
    assert api_key not in curl and api_key not in python
    shown = json.loads(page.text_content("#raw-json") or "")
    env = {**os.environ, "MLGATE_API_KEY": api_key}
    if shutil.which("curl") is not None:
        by_curl = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30, check=True, env=env)
        assert json.loads(by_curl.stdout) == shown
    by_python = subprocess.run([sys.executable, "-c", python], capture_output=True, text=True, timeout=30,
                               check=True, env=env)
    assert ast.literal_eval(by_python.stdout) == shown

    # The list, with the key kept for this tab: the closed model is there too.
    page.goto(f"{server}/ui/")
    page.wait_for_selector("tr[data-model='breast-cancer']")
    page.click("tr[data-model='breast-cancer'] td.name a")
    page.wait_for_selector("#model-name")

    # Forget the key: the page stays, and a prediction is refused with a clear 401.
    page.click("#api-key-forget")
    assert page.evaluate("() => sessionStorage.getItem('mlgate.apiKey')") is None
    for i, value in enumerate(row):
        page.locator("fieldset[data-index='0'] table.features tbody input").nth(i).fill(repr(float(value)))
    page.click("#predict")
    page.wait_for_selector("#status.error")
    status = page.text_content("#status") or ""
    assert status.startswith("Error 401") and "API key" in status
    assert page.locator(".predicted-label").count() == 0
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "playground_without_key_401.png"))
    # A fresh visit without the key: not found again.
    page.reload()
    page.wait_for_selector("#not-found-box:not([hidden])")
    assert page.text_content("h1") == "Not found"


def test_a_wrong_key_is_reported_and_public_models_stay(page: Page, server: str) -> None:
    page.goto(f"{server}/ui/models/digits")
    page.wait_for_selector("#model-name")
    _use_key(page, "mlg_000000000000_not-a-real-key")
    page.wait_for_selector("#api-key-state.error")
    assert (page.text_content("#api-key-state") or "").startswith("Key not accepted (401)")
    assert page.text_content("#model-name") == "digits"  # the page is left as it was
    assert page.evaluate("() => sessionStorage.getItem('mlgate.apiKey')") is None  # a refused key is not kept


def test_dashboard_panel_draws_this_servers_usage(page: Page, server: str, api_key: str, admin_key: str) -> None:
    # Traffic of two callers (one refused: no key), then the report of GET /api/v1/usage, rendered by the
    # dashboard partial into a page of this origin (the CSP of /ui pages applies), drawn by uPlot.
    body = {"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP64",
                        "data": load_breast_cancer().data[0].tolist()}]}
    infer = f"{server}/v2/models/breast-cancer/infer"
    for _ in range(3):
        assert httpx.post(infer, json=body, headers={"Authorization": f"Bearer {api_key}"}).status_code == 200
    assert httpx.post(infer, json={"inputs": []}, headers={"Authorization": f"Bearer {api_key}"}).status_code == 400
    admin = {"Authorization": f"Bearer {admin_key}"}
    deadline = time.monotonic() + 10
    while True:
        response = httpx.get(f"{server}/api/v1/usage", params={"step_s": 60}, headers=admin)
        assert response.status_code == 200, response.text
        report = UsageReport.model_validate(response.json())
        # Wait for what is asserted below: the log is written in the background, and this module's earlier
        # tests made requests too, so four requests alone may be counted before this test's 400 is.
        if (report.totals.requests >= 4 and report.totals.errors_4xx >= 1) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert report.totals.requests >= 4 and report.totals.errors_4xx >= 1
    html = templates.env.get_template("dashboard_panel.html").render(report=report, static="/ui/static")
    page.goto(f"{server}/ui/")
    page.set_content('<!doctype html><html><head><title>Usage</title><link rel="stylesheet" '
                     f'href="/ui/static/style.css"></head><body><main>{html}</main></body></html>')
    page.wait_for_selector("#usage[data-charts='drawn']")
    for chart in ("usage-rps", "usage-latency", "usage-errors", "usage-models-rps", "usage-keys-rps"):
        assert page.locator(f"#{chart} canvas").count() == 1
        assert page.get_attribute(f"#{chart}", "data-points") == str(len(report.buckets))
    caller = page.text_content("#usage-keys tbody th") or ""
    assert caller.startswith("key:mlg_") and caller.endswith("(user:ada)")
    page.screenshot(path=str(ARTIFACTS / "dashboard_panel.png"), full_page=True)


def _sign_in_to_the_admin(page: Page, server: str, username: str, password: str) -> None:
    page.goto(f"{server}/admin/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/admin/")


def test_signed_in_to_the_admin_the_playground_needs_no_key(page: Page, server: str, examples_repo: Path) -> None:
    _sign_in_to_the_admin(page, server, "root", "root's password")
    # A deep link to the closed model, without any key: the admin session carries over.
    answer = page.goto(f"{server}/ui/models/breast-cancer")
    assert answer is not None and answer.status == 200
    page.wait_for_selector("#model-name")
    assert page.text_content("#api-key-state") == "Signed in to the admin as root"
    assert page.evaluate("() => [localStorage.length, sessionStorage.length]") == [0, 0]  # nothing kept

    # The example row of the manifest (load_breast_cancer's first row) fills the form; a prediction follows.
    page.click("#fill-example")
    row = load_breast_cancer().data[0]
    fields = page.locator("fieldset[data-index='0'] table.features tbody input")
    assert [float(fields.nth(i).input_value()) for i in range(30)] == row.tolist()
    with page.expect_request(lambda r: r.url.endswith("/infer")) as sent:
        page.click("#predict")
    token = sent.value.headers["authorization"].removeprefix("Bearer ")
    assert token.count(".") == 2  # a token of the session (a JWT), not a key
    page.wait_for_selector(".predicted-label")
    model = joblib.load(examples_repo / "breast-cancer" / "model.joblib")
    predicted = int(model.predict(row[None])[0])
    assert page.text_content(".predicted-label") == ["malignant", "benign"][predicted]
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "playground_admin_session.png"))

    # The list shows the user's own models too.
    page.goto(f"{server}/ui/")
    page.wait_for_selector("tr[data-model='breast-cancer']")

    # The logout ends it: the token no longer works, and the page is not found again.
    page.goto(f"{server}/ui/models/breast-cancer")
    page.wait_for_selector("#model-name")
    page.goto(f"{server}/admin/logout")
    refused = httpx.post(f"{server}/v2/models/breast-cancer/infer", headers={"Authorization": f"Bearer {token}"},
                         json={"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP64",
                                           "data": row.tolist()}]})
    assert refused.status_code == 401
    page.goto(f"{server}/ui/models/breast-cancer")
    page.wait_for_selector("#not-found-box:not([hidden])")
    assert page.text_content("h1") == "Not found"


def test_a_deep_link_to_no_model_says_not_found_and_the_example_fills_an_image(page: Page, server: str) -> None:
    answer = page.goto(f"{server}/ui/models/no-such-model")
    assert answer is not None and answer.status == 200
    page.wait_for_selector("#not-found-box:not([hidden])")
    assert page.text_content("#not-found") == "model 'no-such-model' is not in the model repository"
    assert page.locator("#looking").count() == 0

    # digits (open): its example is load_digits' first image, a 0, shown in the preview and predicted.
    page.goto(f"{server}/ui/models/digits")
    page.wait_for_selector("#model-name")
    page.click("#fill-example")
    assert page.text_content(".image-source") == "Using the model's example."
    page.click("#predict")
    page.wait_for_selector(".predicted-label")
    assert page.text_content(".predicted-label") == "0"
