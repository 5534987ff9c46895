"""The ``log_file`` setting: a real `mlgate serve` writes its log to stderr and to the file, as JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.processes import serve_process


# json: the access line takes log_access's fast path (written to both handlers); console: the structlog path.
@pytest.mark.parametrize("fmt", ["console", "json"])
def test_the_log_goes_to_stderr_and_to_the_file(examples_repo: Path, tmp_path: Path, fmt: str) -> None:
    log_file = tmp_path / "logs" / "mlgate.jsonl"
    env = {"MLGATE_LOG_FILE": str(log_file), "MLGATE_LOG_FORMAT": fmt}
    with serve_process(examples_repo, tmp_path / "stderr.log", env) as address:
        response = httpx.get(f"http://{address}/v2/models/breast-cancer/ready")
        assert response.status_code == 200
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    events = [line["event"] for line in lines]
    assert "models loaded" in events
    # Alembic: the migrations it ran on this first start, not its plugins and dialect lines.
    assert any(event.startswith("Running upgrade") for event in events)
    assert not [event for event in events if event.startswith(("setup plugin", "Context impl", "Will assume"))]
    (access,) = [line for line in lines if line["event"] == "request" and line.get("path", "").endswith("/ready")
                 and line["request_id"] == response.headers["x-request-id"]]
    assert access["status"] == 200
    # stderr still has the log, in the format asked for.
    stderr = (tmp_path / "stderr.log").read_text()
    assert "models loaded" in stderr and response.headers["x-request-id"] in stderr
    assert ('"event": "models loaded"' in stderr) == (fmt == "json")
