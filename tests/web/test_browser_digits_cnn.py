"""The playground's drawing pad with the Keras ``digits-cnn`` example, in Debian's Chromium (Playwright): a
digit drawn with the mouse is recognised, and the answer shown is what Keras in this process says of the
tensor the page sent."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from mlgate.model.examples import build_examples
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
