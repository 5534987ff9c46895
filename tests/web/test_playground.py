"""The playground pages over real HTTP: the model list, one model's page, 404s, escaping, static files."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import markupsafe
import pytest

from tests.conftest import serve_app
from tests.web.conftest import HTML_DESCRIPTION, HTML_FEATURES, HTML_LABELS

pytestmark = pytest.mark.anyio


@pytest.fixture
async def web(web_repo: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(web_repo) as client:
        yield client


def _spec(page: str) -> dict[str, object]:
    match = re.search(r'<script type="application/json" id="model-spec">(.*?)</script>', page, re.S)
    assert match, "no model spec in the page"
    spec: dict[str, object] = json.loads(match.group(1))
    return spec


async def test_model_list_shows_status_versions_and_platform(web: httpx.AsyncClient) -> None:
    response = await web.get("/ui/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    rows = dict(re.findall(r'<tr data-model="([^"]+)">(.*?)</tr>', page, re.S))
    assert set(rows) == {"breast-cancer", "digits", "html", "text", "grid", "broken"}
    assert "READY" in rows["breast-cancer"] and "sklearn" in rows["breast-cancer"]
    assert "onnxruntime_onnx" in rows["digits"] and "X FP32 [-1, 64]" in rows["digits"]
    assert 'href="/ui/models/digits?version=1"' in rows["digits"]
    assert "FAILED" in rows["broken"] and "/srv/path" not in page  # the reason stays in the server log
    assert (await web.get("/ui", follow_redirects=True)).url.path == "/ui/"


async def test_model_page_form_follows_the_signature(web: httpx.AsyncClient) -> None:
    page = (await web.get("/ui/models/breast-cancer")).text
    assert page.count('type="number"') == 30
    assert 'aria-label="mean radius"' in page and ">worst fractal dimension</th>" in page
    spec = _spec(page)
    assert spec["infer_path"] == "/v2/models/breast-cancer/versions/1/infer"
    assert spec["class_output"] == "predict" and spec["proba_output"] == "predict_proba"
    assert spec["labels"] == ["malignant", "benign"]

    digits = (await web.get("/ui/models/digits?version=1")).text
    assert 'class="pad"' in digits and 'type="file" accept="image/*"' in digits
    (image_input,) = _spec(digits)["inputs"]  # type: ignore[misc]
    assert image_input["kind"] == "image" and image_input["image_shape"] == [1, 64]
    assert image_input["image"] == {"width": 8, "height": 8, "color": "grayscale", "layout": "HWC",
                                    "value_range": [0.0, 16.0], "invert": True}

    text = (await web.get("/ui/models/text")).text
    assert 'class="texts"' in text and _spec(text)["class_output"] is None


async def test_pages_carry_a_strict_content_security_policy(web: httpx.AsyncClient) -> None:
    for path in ("/ui/", "/ui/models/digits", "/ui/models/nope"):
        response = await web.get(path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe-inline" not in csp, path
        assert response.headers["x-content-type-options"] == "nosniff"
    # Nothing inline for the policy to allow: no <script> with code, no on* handler, no style attribute.
    page = (await web.get("/ui/models/digits")).text
    assert "<script>" not in page
    assert not re.search(r"<[^>]*\s(on[a-z]+|style)\s*=", page, re.I)


async def test_html_in_labels_features_and_description_is_shown_as_text(web: httpx.AsyncClient) -> None:
    page = (await web.get("/ui/models/html")).text
    for text in (*HTML_LABELS, *HTML_FEATURES, HTML_DESCRIPTION):
        assert str(markupsafe.escape(text)) in page, text
    for raw in ('<b id="bold">', "<img src=x", "<i>first</i>", "</td> third", "<script>window"):
        assert raw not in page, raw
    # The JSON for the script cannot close its <script> element.
    assert _spec(page)["labels"] == HTML_LABELS
    listing = (await web.get("/ui/")).text
    assert "&lt;script&gt;window.__xss=2&lt;/script&gt;" in listing and "<script>window" not in listing


async def test_unknown_model_is_a_page_its_script_completes_and_an_unknown_version_a_404(
        web: httpx.AsyncClient) -> None:
    # A browser's deep link sends no credentials: 200, and the script asks again with the tab's key or admin
    # session, or shows the "not found" (in the page, hidden until then) itself (tests/web/test_playground_key.py).
    response = await web.get("/ui/models/nope")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert 'id="looking"' in response.text and '<meta name="robots" content="noindex">' in response.text
    assert "model &#39;nope&#39; is not in the model repository" in response.text
    response = await web.get("/ui/models/nope", headers={"Authorization": "Bearer unused"})
    assert response.status_code == 404 and 'id="looking"' not in response.text
    response = await web.get("/ui/models/digits", params={"version": "<b>7</b>"})
    assert response.status_code == 404
    assert "&lt;b&gt;7&lt;/b&gt;" in response.text and "<b>7</b>" not in response.text


async def test_a_failed_model_page_says_it_is_not_ready(web: httpx.AsyncClient) -> None:
    response = await web.get("/ui/models/broken")
    assert response.status_code == 200
    assert "FAILED" in response.text and "not ready" in response.text
    assert 'id="infer-form"' not in response.text and "/srv/path" not in response.text


async def test_static_files_are_served(web: httpx.AsyncClient) -> None:
    script = await web.get("/ui/static/playground.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    # Everything shown goes through textContent.
    assert not re.search(r"innerHTML\s*=|outerHTML|insertAdjacentHTML|document\.write", script.text)
    style = await web.get("/ui/static/style.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert (await web.get("/ui/static/../templates/base.html")).status_code == 404
