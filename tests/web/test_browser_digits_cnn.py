"""The playground's drawing pad and image upload with the Keras ``digits-cnn`` example, in Debian's Chromium
(Playwright): a digit drawn with the mouse, and a PNG of a real scikit-learn digit scaled up, are recognised,
and the answer shown is what Keras in this process says of the tensor the page sent."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from mlgate.codecs.images import image_to_tensor
from mlgate.model.examples import build_examples
from mlgate.model.examples.digits_cnn import held_out_split
from mlgate.model.manifest import read_manifest
from tests.processes import serve_process

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

os.environ.setdefault("KERAS_BACKEND", "torch")


@pytest.fixture(scope="module")
def cnn_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("digits-cnn-web")
    build_examples(root, names=["digits-cnn"])  # the demo as `make serve` builds it: open to anonymous callers
    return root


@pytest.fixture(scope="module")
def cnn_server(browser: object, cnn_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: F811
    log_path = tmp_path_factory.mktemp("serve-digits-cnn") / "serve.log"
    with serve_process(cnn_repo, log_path, ready_timeout_s=180) as url:
        yield f"http://{url}"


def _stroke(page: Page, points: list[tuple[float, float]]) -> None:  # noqa: F811
    """Draw through ``points`` given as fractions of the pad's width and height."""
    box = page.locator("canvas.pad").bounding_box()
    assert box is not None
    at = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(at, at[1:], strict=False):
        for step in range(1, 9):
            page.mouse.move(x0 + (x1 - x0) * step / 8, y0 + (y1 - y0) * step / 8)
    page.mouse.up()


def test_a_drawn_one_is_recognised(page: Page, cnn_server: str, cnn_repo: Path) -> None:  # noqa: F811
    import keras

    page.goto(f"{cnn_server}/ui/models/digits-cnn")
    page.locator("canvas.pad").wait_for()
    with page.expect_request(lambda r: r.url.endswith("/infer")) as sent:
        _stroke(page, [(0.5, 0.1), (0.5, 0.9)])  # a vertical stroke down the middle: a 1
    page.wait_for_selector(".predicted-label")
    (tensor,) = json.loads(sent.value.post_data or "")["inputs"]
    assert tensor["name"] == "image" and tensor["shape"] == [1, 8, 8, 1]
    image = np.asarray(tensor["data"], dtype=np.float32).reshape(1, 8, 8, 1)
    model = keras.saving.load_model(cnn_repo / "digits-cnn" / "model.keras")
    expected = int(np.argmax(model.predict_on_batch(image)))
    assert page.text_content(".predicted-label") == str(expected)
    assert expected == 1


def test_an_uploaded_png_of_a_real_digit_is_recognised(page: Page, cnn_server: str, cnn_repo: Path,  # noqa: F811
                                                      tmp_path: Path) -> None:
    import keras
    from PIL import Image

    _, x_test, _, y_test = held_out_split()
    model = keras.saving.load_model(cnn_repo / "digits-cnn" / "model.keras")
    sure = np.asarray(model.predict_on_batch(x_test)).max(axis=1) > 0.9
    index = int(np.flatnonzero(sure & (y_test == 3))[0])  # a held-out 3 the model is sure of
    gray = np.round(255 - x_test[index, ..., 0] * 255).astype(np.uint8)  # dark ink on white, as on paper
    png = tmp_path / "three.png"
    Image.fromarray(gray).resize((96, 96), Image.Resampling.NEAREST).save(png)
    page.goto(f"{cnn_server}/ui/models/digits-cnn")
    with page.expect_request(lambda r: r.url.endswith("/infer")) as sent:
        page.set_input_files("input.image-file", str(png))
    page.wait_for_selector(".predicted-label")
    (tensor,) = json.loads(sent.value.post_data or "")["inputs"]
    assert tensor["name"] == "image" and tensor["shape"] == [1, 8, 8, 1]
    values = np.asarray(tensor["data"], dtype=np.float32).reshape(1, 8, 8, 1)
    spec = read_manifest(cnn_repo / "digits-cnn").inputs[0].image
    assert spec is not None
    reference = image_to_tensor(np.asarray(Image.open(png).convert("RGBA")), spec).reshape(1, 8, 8, 1)
    np.testing.assert_allclose(values, reference, atol=1e-5)
    np.testing.assert_allclose(values, x_test[index:index + 1], atol=0.5 / 255 + 1e-5)
    probabilities = np.asarray(model.predict_on_batch(values))[0]
    assert page.text_content(".predicted-label") == "3" == str(int(np.argmax(probabilities)))
    assert page.text_content(".predicted-probability") == f"{float(probabilities[3]):.4f}"
