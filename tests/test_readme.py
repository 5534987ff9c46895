"""The README's security walk-through, run as printed against a real `mlgate serve` process.

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
from pathlib import Path

import httpx

from tests.processes import free_port

README = Path(__file__).parent.parent / "README.md"


def _security_blocks() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Security: users, API keys, rate limits"):]
    section = section[:section.index("\n## ", 10)]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)


def test_readme_creates_a_key_and_the_curl_works_as_printed(examples_repo: Path, tmp_path: Path) -> None:
    serve_block, client_block = _security_blocks()[:2]
    port = free_port()
    bin_dir = f"{Path(sys.executable).parent}/"
    env = {**os.environ, "MLGATE_DATA_DIR": str(tmp_path / "data"), "MLGATE_PORT": str(port),
           "MLGATE_MODEL_REPOSITORY": str(examples_repo), "MLGATE_LOG_FORMAT": "json"}
    env.pop("MLGATE_ANONYMOUS_MODELS", None)
    assert "127.0.0.1:8000" in client_block and ".venv/bin/" in client_block
    client_block = client_block.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace(".venv/bin/", bin_dir)
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
        anonymous = httpx.post(f"http://127.0.0.1:{port}/v2/models/breast-cancer/infer", json={"inputs": []})
        assert anonymous.status_code == 401
        # The password prompt reads stdin here: a new session has no terminal for getpass to open.
        result = subprocess.run(["bash", "-c", client_block], input="a good password\na good password\n",
                                capture_output=True, text=True, env=env, timeout=120, start_new_session=True)
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout.strip().splitlines()[-1])
        assert answer["model_name"] == "breast-cancer"
        assert {o["name"]: o["data"] for o in answer["outputs"]}["predict"] == [0]
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
