"""A real `mlgate serve` process on a free port, for tests that need real sockets or a real client.

The server has a first admin (``ADMIN_USERNAME``); ``admin_key(url)`` signs in as them and makes an API key,
for the registry routes (never open to anonymous callers).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ADMIN_USERNAME, ADMIN_PASSWORD = "admin", "test admin password"
"""The first admin of the test servers (here and the in-process app of tests/conftest.py)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_process(repository: Path, log_path: Path, env: dict[str, str] | None = None,
                  ready_timeout_s: float = 90) -> Iterator[str]:
    """Run `python -m mlgate serve` on ``repository``; yields ``host:port`` once it reports ready.

    On exit the process is stopped with SIGTERM and must shut down cleanly (the log is in the failure).
    """
    port = free_port()
    # Like the in-process test app (tests/conftest.py), open every model to anonymous callers unless ``env``
    # says otherwise (tests of security itself pass their own MLGATE_ANONYMOUS_MODELS), and serve from one
    # HTTP process unless the test asks for more (tests/test_serve_workers.py).
    full_env = {**os.environ, "MLGATE_LOG_FORMAT": "json", "MLGATE_ANONYMOUS_MODELS": '["*"]', "MLGATE_WORKERS": "1",
                "MLGATE_RATE_LIMIT_TIERS": '{"anonymous": {"requests": "", "rows": ""}}',
                "MLGATE_ADMIN_USERNAME": ADMIN_USERNAME, "MLGATE_ADMIN_PASSWORD": ADMIN_PASSWORD,
                **(env or {})}
    if "MLGATE_DATA_DIR" not in full_env:  # keep the test's database out of the user's data dir
        (log_path.parent / "data").mkdir(exist_ok=True)
        full_env["MLGATE_DATA_DIR"] = str(log_path.parent / "data")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlgate", "serve", "--model-repository", str(repository), "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=full_env)
        url = f"127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + ready_timeout_s
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if httpx.get(f"http://{url}/v2/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"server did not become ready in {ready_timeout_s} s"
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    # uvicorn re-raises SIGTERM after its graceful shutdown, so -15 is a clean stop too.
    assert proc.returncode in (0, -15), log_path.read_text()[-3000:]
    assert "Application shutdown complete" in log_path.read_text()


def admin_key(address: str, name: str = "tests") -> str:
    """A new API key of the first admin of the server at ``address`` (``host:port`` or a URL), made over HTTP."""
    url = address if address.startswith("http") else f"http://{address}"
    signed_in = httpx.post(f"{url}/api/v1/auth/token", timeout=10,
                           data={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    made = httpx.post(f"{url}/api/v1/keys", json={"name": name}, timeout=10,
                      headers={"Authorization": f"Bearer {signed_in.json()['access_token']}"})
    assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return key
