"""The playground and the docs in a real browser: Debian's Chromium, headless, driven by Playwright.

A real ``mlgate serve`` process serves breast-cancer, digits, a model whose labels are HTML and a text
model on a free port. Each test leaves a screenshot in ``test-artifacts/``. Without /usr/bin/chromium
(``apt-get install -y chromium``) or the playwright package the tests skip, unless
``MLGATE_REQUIRE_SERVICES=1``, where they fail. No browser is ever downloaded.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image
from sklearn.datasets import load_breast_cancer, load_digits

from mlgate.codecs.images import image_to_tensor
from mlgate.model.manifest import read_manifest
from tests.processes import serve_process
from tests.web.conftest import HTML_DESCRIPTION, HTML_FEATURES, HTML_LABELS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

@pytest.fixture(scope="module")
def server(browser: Browser, web_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a real ``mlgate serve`` on a free port.

    A browser sends no credentials: the playground shows (and can call) the models open to anonymous callers,
    so this server opens them all (tests/processes.py's default), with a data directory of its own.
    """
    log_path = tmp_path_factory.mktemp("serve-web") / "serve.log"
    with serve_process(web_repo, log_path, {"MLGATE_DATA_DIR": str(tmp_path_factory.mktemp("web-data"))}) as url:
        yield f"http://{url}"


def _fill_breast_cancer(page: Page, server: str, row: np.ndarray) -> None:
    page.goto(f"{server}/ui/models/breast-cancer")
    fields = page.locator("fieldset[data-index='0'] table.features tbody input")
    assert fields.count() == 30
    for i, value in enumerate(row):
        fields.nth(i).fill(repr(float(value)))


def _uncertain_row(examples: Path) -> tuple[np.ndarray, Any]:
    """A real breast-cancer row the model is not sure about, so that the probability shown means something."""
    data = load_breast_cancer().data
    model = joblib.load(examples / "breast-cancer" / "model.joblib")
    proba = model.predict_proba(data)
    index = int(np.flatnonzero((proba.max(axis=1) > 0.6) & (proba.max(axis=1) < 0.95))[0])
    return data[index], model


def test_breast_cancer_prediction_equals_the_model_in_process(page: Page, server: str, web_repo: Path) -> None:
    row, model = _uncertain_row(web_repo)
    _fill_breast_cancer(page, server, row)
    page.click("#predict")
    page.wait_for_selector(".predicted-label")
    proba = model.predict_proba(row[None])[0]
    predicted = int(model.predict(row[None])[0])
    assert page.text_content(".predicted-label") == ["malignant", "benign"][predicted]
    assert page.text_content(".predicted-probability") == f"{proba[predicted]:.4f}"
    shown = {page.text_content(f"tr[data-index='{i}'] td.label"):
             page.text_content(f"tr[data-index='{i}'] .probability") for i in range(2)}
    assert shown == {"malignant": f"{proba[0]:.4f}", "benign": f"{proba[1]:.4f}"}
    assert "Latency" in (page.text_content("#latency") or "")
    raw = json.loads(page.text_content("#raw-json") or "")
    assert raw["model_name"] == "breast-cancer"


def test_snippets_work_as_shown(page: Page, server: str, web_repo: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    row, _ = _uncertain_row(web_repo)
    _fill_breast_cancer(page, server, row)
    page.click("#predict")
    page.wait_for_selector(".predicted-label")
    shown = json.loads(page.text_content("#raw-json") or "")
    curl = page.text_content("#snippet-curl") or ""
    python = page.text_content("#snippet-python") or ""
    assert curl.startswith("curl ") and "import urllib.request" in python
    by_curl = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30, check=True)
    by_python = subprocess.run([sys.executable, "-c", python], capture_output=True, text=True, timeout=30,
                               check=True)
    assert json.loads(by_curl.stdout) == shown
    assert ast.literal_eval(by_python.stdout) == shown


def _digit_png(path: Path, values: np.ndarray, size: int) -> Path:
    """A load_digits image (8x8, 0-16, ink high) as a PNG of dark ink on white, ``size`` pixels wide."""
    gray = np.round(255 - values * 255 / 16).astype(np.uint8)
    Image.fromarray(gray).resize((size, size), Image.Resampling.NEAREST).save(path)
    return path


def _sent_tensor(request_body: str | None) -> np.ndarray:
    body = json.loads(request_body or "")
    (tensor,) = body["inputs"]
    assert tensor["name"] == "X" and tensor["datatype"] == "FP32" and tensor["shape"] == [1, 64]
    return np.asarray(tensor["data"], dtype=np.float64).reshape(-1)


def test_uploaded_digit_is_recognised(page: Page, server: str, web_repo: Path, tmp_path: Path) -> None:
    digits = load_digits()
    session = ort.InferenceSession(str(web_repo / "digits" / "model.onnx"), providers=["CPUExecutionProvider"])
    labels, proba = session.run(None, {"X": digits.data.astype(np.float32)})
    # A digit the model gets right and is sure of, that is not the first class.
    index = int(np.flatnonzero((labels == digits.target) & (proba.max(axis=1) > 0.9) & (digits.target == 7))[0])
    png = _digit_png(tmp_path / "seven.png", digits.images[index], 64)
    page.goto(f"{server}/ui/models/digits")
    with page.expect_request(lambda r: r.url.endswith("/v2/models/digits/versions/1/infer")) as sent:
        page.set_input_files("input.image-file", str(png))
    page.wait_for_selector(".predicted-label")
    values = _sent_tensor(sent.value.post_data)
    spec = read_manifest(web_repo / "digits").inputs[0].image
    assert spec is not None
    expected = image_to_tensor(np.asarray(Image.open(png).convert("RGBA")), spec)
    np.testing.assert_allclose(values, expected, atol=1e-5)
    np.testing.assert_allclose(values, digits.data[index], atol=16 / 255 / 2 + 1e-5)
    assert page.text_content(".predicted-label") == "7"
    in_process = session.run(None, {"X": values[None].astype(np.float32)})[1][0]
    assert page.text_content(".predicted-probability") == f"{float(in_process[7]):.4f}"


def test_colour_picture_with_transparency_is_preprocessed_like_the_reference(
    page: Page, server: str, web_repo: Path, tmp_path: Path
) -> None:
    """An odd-sized RGBA picture (fractional area weights, alpha on white, luma) gives the reference values."""
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, size=(37, 50, 4), dtype=np.uint8)
    pixels[..., 3] = np.where(rng.random((37, 50)) < 0.3, 255, pixels[..., 3])
    png = tmp_path / "noise.png"
    Image.fromarray(pixels, "RGBA").save(png)
    page.goto(f"{server}/ui/models/digits")
    with page.expect_request(lambda r: r.url.endswith("/infer")) as sent:
        page.set_input_files("input.image-file", str(png))
    page.wait_for_selector(".predicted-label")
    spec = read_manifest(web_repo / "digits").inputs[0].image
    assert spec is not None
    expected = image_to_tensor(pixels, spec)
    values = _sent_tensor(sent.value.post_data)
    # The browser composites in 8 bits: within about one gray level (16/255) per pixel.
    np.testing.assert_allclose(values, expected, atol=16 / 255)
    assert np.abs(values - expected).mean() < 0.02


def test_drawing_pad_sends_what_was_drawn(page: Page, server: str, web_repo: Path) -> None:
    page.goto(f"{server}/ui/models/digits")
    box = page.locator("canvas.pad").bounding_box()
    assert box is not None
    x = box["x"] + box["width"] / 2
    with page.expect_request(lambda r: r.url.endswith("/infer")) as sent:
        page.mouse.move(x, box["y"] + 20)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(x, box["y"] + 20 + step * (box["height"] - 40) / 10)
        page.mouse.up()
    page.wait_for_selector(".predicted-label")
    values = _sent_tensor(sent.value.post_data).reshape(8, 8)
    # The pad's own pixels, read back, preprocessed by the reference, give what the page sent.
    rgba = page.evaluate("""() => {
        const pad = document.querySelector("canvas.pad");
        return Array.from(pad.getContext("2d").getImageData(0, 0, pad.width, pad.height).data);
    }""")
    pad = np.asarray(rgba, dtype=np.uint8).reshape(192, 192, 4)
    spec = read_manifest(web_repo / "digits").inputs[0].image
    assert spec is not None
    np.testing.assert_allclose(values.reshape(-1), image_to_tensor(pad, spec), atol=1e-5)
    # A vertical stroke down the middle: ink in the middle columns, none at the edges.
    assert values[:, 3:5].sum() > 8 * 16 * 0.5 and values[:, [0, 7]].max() == 0
    assert page.text_content(".image-source") == "Using the drawing."


def test_html_in_labels_is_shown_as_text(page: Page, server: str) -> None:
    page.goto(f"{server}/ui/models/html")
    assert page.locator("#labels li").all_text_contents() == HTML_LABELS
    assert page.text_content("#model-description") == HTML_DESCRIPTION
    assert page.locator("table.features tbody th").all_text_contents() == HTML_FEATURES
    fields = page.locator("table.features tbody input")
    fields.nth(0).fill("2")
    fields.nth(1).fill("1")
    page.click("#predict")
    page.wait_for_selector(".predicted-label")
    assert page.text_content(".predicted-label") == HTML_LABELS[1]
    assert page.locator("tr[data-index='0'] td.label").text_content() == HTML_LABELS[0]
    assert page.locator("#bold").count() == 0 and page.locator("main img").count() == 0
    assert page.evaluate("window.__xss") is None


def test_text_json_and_errors_are_shown(page: Page, server: str) -> None:
    page.goto(f"{server}/ui/models/text")
    page.click("#predict")
    assert (page.text_content("#status") or "").startswith("Write at least one line of text")
    page.fill("textarea.texts", "hello <b>world</b>\nsecond")
    page.click("#predict")
    page.wait_for_selector("dl.outputs")
    assert page.locator(".prediction").count() == 2
    assert page.locator(".prediction[data-example='0'] dd").all_text_contents() == ['["HELLO <B>WORLD</B>"]', "[18]"]
    # A JSON box: the example answers; data of the wrong shape gets the server's 400, shown with its code.
    page.goto(f"{server}/ui/models/grid")
    assert page.input_value("textarea.json") == "[[[0, 0], [0, 0]]]"
    page.fill("textarea.json", "[[[1, 2], [3, 4.5]], [[0, 0], [0, -1]]]")
    page.click("#predict")
    page.wait_for_selector("dl.outputs")
    assert page.locator("dl.outputs dd").all_text_contents() == ["[10.5]", "[-1]"]
    page.fill("textarea.json", "[[1, 2, 3]]")
    page.click("#predict")
    page.wait_for_selector("#status.error")
    status = page.text_content("#status") or ""
    assert status.startswith("Error 400 invalid_input:") and "[-1, 2, 2]" in status
    assert page.locator(".prediction").count() == 0
    # Checks in the page: a pasted line of the wrong width, a value that is not finite, an empty field.
    page.goto(f"{server}/ui/models/breast-cancer")
    page.fill("textarea.paste-box", "1 2 3")
    page.click("button.fill")
    assert page.text_content("#status") == "Line 1 has 3 values; features takes 30."
    page.fill("textarea.paste-box", ", ".join(["1.5"] * 30) + "\n" + "\t".join(["2"] * 30))
    page.click("button.fill")
    assert page.locator(".example-head").count() == 2
    page.fill("textarea.paste-box", " ".join(["1"] * 29 + ["1e309"]))
    page.click("button.fill")
    assert page.text_content("#status") == "Line 1, value 30 (1e309) is not a finite number."
    page.locator("table.features tbody input").nth(0).fill("")
    page.click("#predict")
    assert page.text_content("#status") == "Fill in mean radius (example 1)."


def test_docs_work_offline(page: Page, server: str) -> None:
    """Swagger UI and ReDoc render from local assets; anything a bundle links out to is refused."""
    outside: list[tuple[str, str | None]] = []
    answered_outside: list[str] = []
    page.on("requestfailed", lambda r: outside.append((r.url, r.failure)) if not r.url.startswith(server) else None)
    page.on("response", lambda r: answered_outside.append(r.url)
            if not r.url.startswith((server, "data:", "blob:")) else None)
    page.goto(f"{server}/docs")
    page.get_by_text("/v2/models/breast-cancer/infer", exact=True).wait_for()
    page.goto(f"{server}/redoc")
    page.get_by_role("heading", name="Inference on digits (its highest version)").wait_for()
    page.wait_for_timeout(500)
    assert answered_outside == []
    # Playwright reports a request the page's policy refused as failure "csp" (Chromium: ERR_BLOCKED_BY_CSP).
    assert all(failure in ("csp", "net::ERR_BLOCKED_BY_CSP") for _, failure in outside), outside
