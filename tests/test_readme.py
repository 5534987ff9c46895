"""The commands and curls of the README and the documentation pages, run as printed against a real `mlgate serve`.

- README.md and docs/quickstart.md: the first curls, against the example models as `make serve` serves them
  (their manifests open them to anonymous callers; nothing else does here).
- docs/security.md: the walk-through that makes the first admin and a key, shows the 401 without it and the 403
  outside its scope, calls a model with it, revokes it and shows the 401 that follows.
- The Python snippets (docs/quickstart.md's tritonclient, docs/protocols.md's openai SDK), run as printed.
- The `make` commands they print are targets of the Makefile.

Only two things differ from a reader's machine: the port (a free one instead of 8000, so parallel runs do not
collide) and where `.venv/bin` is (this interpreter's bin directory). The data directory and the model
repository come from the environment, as they would from a reader's settings.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlgate.model.examples import build_examples
from tests.processes import free_port, serve_process

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
QUICKSTART = ROOT / "docs" / "quickstart.md"
SECURITY = ROOT / "docs" / "security.md"
PROTOCOLS = ROOT / "docs" / "protocols.md"
MAKEFILE = ROOT / "Makefile"


def bash_blocks(path: Path, heading: str | None = None) -> list[str]:
    """The ```bash blocks of ``path``, or of its section under the ``## heading`` (up to the next ``## ``)."""
    text = path.read_text()
    if heading is not None:
        text = text[text.index(f"\n## {heading}\n"):]
        end = text.find("\n## ", 10)
        text = text if end < 0 else text[:end]
    return re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)


def _run_curls(block: str, address: str) -> list[dict[str, Any]]:
    """Run a block of curls as printed (port swapped) and return each answer, one JSON document per line."""
    assert "127.0.0.1:8000" in block
    result = subprocess.run(["bash", "-e", "-c", block.replace("127.0.0.1:8000", address)], capture_output=True,
                            text=True, timeout=60, start_new_session=True)
    assert result.returncode == 0, result.stderr
    # curl prints no newline after a body: the answers run together; split them as a JSON stream.
    decoder, text, answers = json.JSONDecoder(), result.stdout.strip(), []
    while text:
        answer, end = decoder.raw_decode(text)
        answers.append(answer)
        text = text[end:].lstrip()
    return answers


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of `mlgate serve` over breast-cancer and digits as `make serve` builds them: open to
    anonymous callers by their manifests only (the settings open nothing, as by default)."""
    root = tmp_path_factory.mktemp("demo")
    build_examples(root, names=["breast-cancer", "digits"])
    with serve_process(root, root / "serve.log", env={"MLGATE_ANONYMOUS_MODELS": "[]"}) as address:
        yield address


def test_readme_first_curl_works_as_printed(demo_server: str) -> None:
    blocks = [b for b in bash_blocks(README) if "curl" in b]
    assert len(blocks) == 1, "the README shows one curl block, the first request"
    [answer] = _run_curls(blocks[0], demo_server)
    assert answer["model_name"] == "breast-cancer" and answer["model_version"] == "1"
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["predict"]["data"] == [0] and outputs["predict"]["datatype"] == "INT64"
    assert outputs["predict"]["shape"] == [1]


def test_quickstart_curls_work_as_printed(demo_server: str) -> None:
    blocks = [b for b in bash_blocks(QUICKSTART, "First requests") if "curl" in b]
    assert len(blocks) == 1
    server, metadata, v2, digits, v1 = _run_curls(blocks[0], demo_server)
    assert server["name"] == "mlgate"
    assert metadata["name"] == "breast-cancer" and metadata["inputs"][0]["shape"] == [-1, 30]
    assert v2["id"] == "first-row"
    assert {o["name"]: o["data"] for o in v2["outputs"]}["predict"] == [0]
    # Top-2 classes of the digit (a zero), as "score:index[:label]" strings.
    [top2] = digits["outputs"]
    assert top2["name"] == "probabilities" and top2["datatype"] == "BYTES" and top2["shape"] == [1, 2]
    assert top2["data"][0].split(":")[1] == "0"
    assert v1["predictions"][0]["predict"] == 0
    assert len(v1["predictions"][0]["predict_proba"]) == 2


def test_printed_make_commands_are_makefile_targets() -> None:
    targets = set(re.findall(r"^([a-z][\w-]*):", MAKEFILE.read_text(), flags=re.MULTILINE))
    for page in (README, QUICKSTART, ROOT / "docs" / "development.md"):
        printed = {m for block in bash_blocks(page) for m in re.findall(r"^make (\w+)", block, flags=re.MULTILINE)}
        assert printed, page
        assert printed <= targets, f"{page.name} prints make targets the Makefile lacks: {printed - targets}"


def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of ``path``."""
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.DOTALL)


def _run_python(block: str, address: str) -> list[str]:
    """Run a Python snippet as printed (port swapped) with this interpreter; its output lines."""
    assert "127.0.0.1:8000" in block
    result = subprocess.run([sys.executable, "-c", block.replace("127.0.0.1:8000", address)], capture_output=True,
                            text=True, timeout=120, start_new_session=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()


def test_quickstart_python_works_as_printed(demo_server: str) -> None:
    [block] = python_blocks(QUICKSTART)
    [line] = _run_python(block, demo_server)
    assert line == "[0 0 0 0 0]"  # tritonclient's numpy answer: the first five rows are malignant cases


def test_openai_sdk_snippet_works_as_printed(tmp_path: Path) -> None:
    from tests.conftest import require_embeddings

    require_embeddings()
    [block] = python_blocks(PROTOCOLS)
    assert 'api_key="unused"' in block
    build_examples(tmp_path, names=["minilm"])  # the open demo, as `make serve` builds it
    with serve_process(tmp_path, tmp_path / "serve.log", env={"MLGATE_ANONYMOUS_MODELS": "[]"}) as address:
        shape_line, packed_line = _run_python(block, address)
    shape, similarity, tokens = shape_line.replace("(2, 384)", "2x384").split()
    assert shape == "2x384" and 0.0 < float(similarity) < 1.0 and int(tokens) > 0
    assert len(packed_line.strip("[]").split()) == 4


def test_security_page_creates_a_key_and_the_curl_works_as_printed(tmp_path: Path) -> None:
    serve_block, client_block, revoke_block = bash_blocks(SECURITY, "The first admin and a key")[:3]
    demo = tmp_path / "demo"
    build_examples(demo, names=["breast-cancer", "digits"])  # open to anonymous callers, as `mlgate serve` builds them
    port = free_port()
    bin_dir = f"{Path(sys.executable).parent}/"
    env = {**os.environ, "MLGATE_DATA_DIR": str(tmp_path / "data"), "MLGATE_PORT": str(port),
           "MLGATE_MODEL_REPOSITORY": str(demo), "MLGATE_LOG_FORMAT": "json"}
    env.pop("MLGATE_ANONYMOUS_MODELS", None)
    assert "127.0.0.1:8000" in client_block and ".venv/bin/" in client_block
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(shlex.split(serve_block.replace(".venv/bin/", bin_dir)), stdout=log,
                              stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become ready in 60 s"
            time.sleep(0.2)
        # The password prompt reads stdin here: a new session has no terminal for getpass to open.
        script = f"{client_block}\n{revoke_block}".replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace(
            ".venv/bin/", bin_dir)
        result = subprocess.run(["bash", "-e", "-c", script], input="a good password\na good password\n",
                                capture_output=True, text=True, env=env, timeout=120, start_new_session=True)
        assert result.returncode == 0, result.stderr
        # curl ends its answers without a newline: the CLI's line follows the previous answer on its line.
        text, revoked = re.subn(r"key mlg_[0-9a-f]{12} \(laptop, user admin\) revoked at [^\n]*\n", "\n",
                                result.stdout)
        assert revoked == 1, result.stdout
        assert "user admin created" in text[:text.index("{")], text  # `users create`'s prompts and line first
        decoder, text, answers = json.JSONDecoder(), text[text.index("{"):], []
        while text:
            answer, end = decoder.raw_decode(text)
            answers.append(answer)
            text = text[end:].lstrip()
        no_key, me, out_of_scope, inference, after_revoke = answers
        assert no_key["code"] == "unauthenticated"  # the 401 the page promises
        assert me["user"] == "admin" and me["actions"] == ["predict"] and me["via"] == "key"
        assert out_of_scope["code"] == "forbidden"
        assert inference["model_name"] == "breast-cancer"
        assert {o["name"]: o["data"] for o in inference["outputs"]}["predict"] == [0]
        assert after_revoke["code"] == "invalid_credentials"
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
