"""The curls and the Python client of docs/jobs.md, run as printed against a real `mlgate serve` (the embedded
default) with an API key in MLGATE_KEY; only the port differs from a reader's machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.processes import admin_key, serve_process
from tests.test_readme import bash_blocks

PAGE = Path(__file__).parent.parent.parent / "docs" / "jobs.md"


def python_blocks(heading: str) -> list[str]:
    text = PAGE.read_text()
    text = text[text.index(f"\n## {heading}\n"):]
    end = text.find("\n## ", 10)
    return re.findall(r"```python\n(.*?)```", text if end < 0 else text[:end], flags=re.DOTALL)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, examples_repo: Path) -> Iterator[tuple[str, str]]:
    """``(host:port, API key)`` of `mlgate serve` over the example models, anonymous access closed."""
    log = tmp_path_factory.mktemp("jobs-docs") / "serve.log"
    with serve_process(examples_repo, log, env={"MLGATE_ANONYMOUS_MODELS": "[]"}) as address:
        yield address, admin_key(address)


def _bash(block: str, server: tuple[str, str]) -> str:
    address, key = server
    assert "127.0.0.1:8000" in block
    result = subprocess.run(["bash", "-e", "-c", block.replace("127.0.0.1:8000", address)], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "MLGATE_KEY": key}, start_new_session=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _json_stream(text: str) -> list[Any]:
    """The JSON documents curl printed one after another (curl adds no newline after a body)."""
    decoder, text, answers = json.JSONDecoder(), text.strip(), []
    while text:
        answer, end = decoder.raw_decode(text)
        answers.append(answer)
        text = text[end:].lstrip()
    return answers


def _after_events(out: str) -> str:
    return out[out.rindex("\ndata: "):].split("\n", 2)[2]


def test_submit_follow_fetch_works_as_printed(server: tuple[str, str]) -> None:
    [block] = bash_blocks(PAGE, "Submit, follow, fetch")
    out = _bash(block, server)
    events = re.findall(r"^event: (\w+)\ndata: (.*)$", out, flags=re.MULTILINE)
    assert events and events[-1][0] == "status" and json.loads(events[-1][1])["status"] == "succeeded"
    job, result = _json_stream(_after_events(out))
    assert job["status"] == "succeeded" and job["progress"] == 1.0
    assert result["model_name"] == "breast-cancer"
    assert {o["name"]: o["data"] for o in result["outputs"]}["predict"] == [0]


def test_prefer_respond_async_works_as_printed(server: tuple[str, str]) -> None:
    [block] = bash_blocks(PAGE, "`Prefer: respond-async` on the inference routes")
    out = _bash(block, server)
    assert out.startswith("HTTP/1.1 202")
    assert re.search(r"^location: /api/v1/jobs/[0-9a-f]{32}\r?$", out, flags=re.MULTILINE | re.IGNORECASE)


def test_cancel_and_list_work_as_printed(server: tuple[str, str]) -> None:
    [submit] = bash_blocks(PAGE, "Submit, follow, fetch")
    [block] = bash_blocks(PAGE, "Cancel and list")
    out = _bash(submit + block, server)
    _job, _result, listed, cancelled = _json_stream(_after_events(out))
    assert cancelled["status"] == "succeeded"  # it had ended: cancelling changes nothing
    assert listed["items"] and all(item["status"] == "succeeded" for item in listed["items"])


def test_the_python_client_works_as_printed(server: tuple[str, str]) -> None:
    address, key = server
    [client] = python_blocks("From Python")
    result = subprocess.run([sys.executable, "-c", client.replace("127.0.0.1:8000", address)], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "MLGATE_KEY": key})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("status ") and lines[-3] == "status 1.0"
    assert lines[-2] == "[0]"
    assert lines[-1] in ("cancelled", "succeeded", "running")
