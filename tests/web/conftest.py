"""Web fixtures: a model whose labels, features and description hold HTML, a repository with it, one app per
test module for the modules whose tests only read (the docs pages and the OpenAPI document: ``client``
overrides the per-test app of tests/conftest.py; tests that change state start their own app), and the
browser of the browser tests.

The browser tests drive Debian's Chromium (/usr/bin/chromium), headless, through Playwright; each leaves a
screenshot in ``test-artifacts/``. Without Chromium or the playwright package they skip, unless
``MLGATE_REQUIRE_SERVICES=1``, where they fail. No browser is ever downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import serve_app
from tests.fakes import TEXT_MODEL, write_python_model

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

HTML_LABELS = ['<b id="bold">bold</b>', '<img src=x onerror="window.__xss=1">']
HTML_FEATURES = ["<i>first</i>", "second & </td> third"]
HTML_DESCRIPTION = "<script>window.__xss=2</script> A model whose texts are HTML."

HTML_MODEL = '''
import numpy as np

class Model:
    def predict(self, batch):
        x = batch["x"]
        first = (x[:, 0] > x[:, 1]).astype(np.int64)
        proba = np.where(first[:, None] == 1, [0.25, 0.75], [0.8, 0.2])
        return {"label": first, "proba": proba}
'''


def html_model(root: Path) -> Path:
    """``html``: class 1 (its label an <img onerror>) when x[0] > x[1], else class 0 (a <b>)."""
    return write_python_model(
        root, "html", HTML_MODEL,
        '[[inputs]]\nname = "x"\ndatatype = "FP64"\nshape = [-1, 2]\n'
        f"feature_names = {json.dumps(HTML_FEATURES)}\n",
        '[[outputs]]\nname = "label"\ndatatype = "INT64"\nshape = [-1]\n'
        '[[outputs]]\nname = "proba"\ndatatype = "FP64"\nshape = [-1, 2]\n',
        extra=f"labels = {json.dumps(HTML_LABELS)}\ndescription = {json.dumps(HTML_DESCRIPTION)}\n",
    )


GRID_MODEL = '''
class Model:
    def predict(self, batch):
        return {"total": batch["grid"].sum(axis=(1, 2))}
'''


def grid_model(root: Path) -> Path:
    """``grid``: FP32 ``grid`` [-1, 2, 2] in (a JSON box in the playground), its sum ``total`` out."""
    return write_python_model(
        root, "grid", GRID_MODEL,
        '[[inputs]]\nname = "grid"\ndatatype = "FP32"\nshape = [-1, 2, 2]\n',
        '[[outputs]]\nname = "total"\ndatatype = "FP32"\nshape = [-1]\n',
    )


def text_model(root: Path) -> Path:
    """``text``: BYTES ``text`` [-1] in; ``upper`` BYTES and ``length`` INT32 out."""
    return write_python_model(
        root, "text", TEXT_MODEL,
        '[[inputs]]\nname = "text"\ndatatype = "BYTES"\nshape = [-1]\n',
        '[[outputs]]\nname = "upper"\ndatatype = "BYTES"\nshape = [-1]\n'
        '[[outputs]]\nname = "length"\ndatatype = "INT32"\nshape = [-1]\n',
    )


@pytest.fixture(scope="session")
def web_repo(examples_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """breast-cancer, digits, the HTML, text and grid models, and one model that fails to load."""
    root = tmp_path_factory.mktemp("web-repo")
    for name in ("breast-cancer", "digits"):
        shutil.copytree(examples_repo / name, root / name)
    html_model(root)
    text_model(root)
    grid_model(root)
    write_python_model(root, "broken", "raise ImportError('secret /srv/path')\n",
                       '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1, 1]\n',
                       '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n')
    return root


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module scope, so that the module-scoped ``client`` and the tests run on one event loop."""
    return "asyncio"


@pytest.fixture(scope="module")
async def client(examples_repo: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(examples_repo) as c:
        yield c


def _missing_browser() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium, headless, for one test module; skips (or fails under MLGATE_REQUIRE_SERVICES=1) without it."""
    missing = _missing_browser()
    if missing is not None:
        if os.environ.get("MLGATE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"browser tests required (MLGATE_REQUIRE_SERVICES=1) but {missing}")
        pytest.skip(f"browser tests need Chromium and Playwright: {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextmanager
def open_page(browser: Browser, request: pytest.FixtureRequest, width: int = 1280,
              height: int = 900) -> Iterator[tuple[Page, list[str]]]:
    """A fresh page and the list its JavaScript errors go to (the caller may add its own checks to it).

    On exit a screenshot named after the test is kept in test-artifacts/, and any error fails the test.
    """
    context = browser.new_context(viewport={"width": width, "height": height})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield tab, errors
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        context.close()
    assert not errors, errors


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page; its JavaScript errors fail the test, and a screenshot is kept in test-artifacts/."""
    with open_page(browser, request) as (tab, _):
        yield tab
