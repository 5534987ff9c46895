"""Stopping without dropping: SIGTERM to a real `mlgate serve` under load, with one and two HTTP processes.

On SIGTERM the server turns /v2/health/ready to not ready (503: the server is unavailable) and
keeps serving for ``drain_s`` (every answer with ``Connection: close``), then stops listening, finishes what
is in flight, writes the prediction log and exits. The load below behaves like a load balancer: it stops
sending new requests once it sees the server not ready; requests already sent, and long ones still running
when the server stops listening, must all be answered 200, and every answer must be in the prediction log
after the exit.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import write_python_model
from tests.processes import free_port

NAP_MODEL = '''
import time
from pathlib import Path

class Model:
    def predict(self, batch, parameters):
        x = batch["x"]
        if not x.any():  # the warm-up request: zeros
            (Path(__file__).parent / "warmed").touch()
        time.sleep(float(parameters.get("sleep_s", 0.01)))
        return {"y": x * 2}
'''

DRAIN_S = 3.0
LONG_SLEEP_S = 3.0  # started during the drain, still running when the server stops listening


def _nap_model(root: Path, name: str, extra: str = "") -> Path:
    return write_python_model(
        root, name, NAP_MODEL, '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n',
        '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n',
        extra + "\n[batching]\nmax_batch_size = 32\nmax_queue_delay_ms = 100\n")


def _body(value: float, sleep_s: float) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [value]}],
            "parameters": {"sleep_s": sleep_s}}


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_drops_no_accepted_request(tmp_path: Path, workers: int) -> None:
    repo = tmp_path / "repo"
    quick = _nap_model(repo, "quick", "required = true")
    _nap_model(repo, "slow")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLGATE_LOG_FORMAT": "json", "MLGATE_ANONYMOUS_MODELS": '["*"]',
           "MLGATE_RATE_LIMIT_TIERS": '{"anonymous": {"requests": "", "rows": ""}}',
           "MLGATE_DATA_DIR": str(tmp_path / "data"), "MLGATE_WORKERS": str(workers),
           "MLGATE_DRAIN_S": str(DRAIN_S), "MLGATE_ACCESS_LOG": "false"}
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mlgate", "serve", "--model-repository", str(repo),
                                 "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "not ready in 90 s"
            time.sleep(0.1)
        assert (quick / "warmed").exists(), "ready before the required model was warmed"

        outcomes: list[tuple[str, float, str]] = []  # (kind, finished at, status or exception)
        lock = threading.Lock()
        not_ready_at: list[float] = []
        signalled = threading.Event()
        stop = threading.Event()

        def record(kind: str, result: str) -> None:
            with lock:
                outcomes.append((kind, time.monotonic(), result))

        def watch_readiness() -> None:  # a balancer's health check: a new connection every 50 ms
            while not stop.is_set():
                try:
                    status = httpx.get(f"{url}/v2/health/ready", timeout=2).status_code
                except httpx.TransportError:
                    return
                if status != 200 and signalled.is_set() and not not_ready_at:
                    not_ready_at.append(time.monotonic())
                time.sleep(0.05)

        def steady(i: int) -> None:  # keep-alive client; stops sending once the balancer saw "not ready"
            with httpx.Client(timeout=30) as client:
                for n in range(2000):
                    if not_ready_at or stop.is_set():
                        return
                    try:
                        response = client.post(f"{url}/v2/models/quick/infer", json=_body(i * 10000 + n, 0.005))
                        record("steady", str(response.status_code))
                    except httpx.TransportError as exc:
                        record("steady", type(exc).__name__)

        def long_request() -> None:  # sent during the drain, in flight when the server stops listening
            try:
                response = httpx.post(f"{url}/v2/models/slow/infer", json=_body(7, LONG_SLEEP_S), timeout=30)
                record("long", str(response.status_code))
            except httpx.TransportError as exc:
                record("long", type(exc).__name__)

        threads = [threading.Thread(target=watch_readiness), *(threading.Thread(target=steady, args=(i,))
                                                               for i in range(6))]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        signalled_at = time.monotonic()
        signalled.set()
        proc.send_signal(signal.SIGTERM)
        # Readiness turns off in every HTTP process (uvicorn's supervisor forwards the signal to its workers
        # from its own loop); wait for two new connections in a row to say so, at most 5 s.
        deadline, said = time.monotonic() + 5, []
        while said[-2:] != [503, 503]:
            assert time.monotonic() < deadline, f"readiness still on 5 s after SIGTERM: {said[-5:]}"
            said.append(httpx.get(f"{url}/v2/health/ready", timeout=10).status_code)
            time.sleep(0.05)
        # Still serving during the drain (a new connection), while readiness says not ready.
        assert httpx.get(f"{url}/v2/health/live", timeout=10).status_code == 200
        assert httpx.post(f"{url}/v2/models/quick/infer", json=_body(1, 0), timeout=10).status_code == 200
        longs = [threading.Thread(target=long_request) for _ in range(2)]
        for thread in longs:
            thread.start()
        proc.wait(timeout=60)
        stop.set()
        for thread in [*threads, *longs]:
            thread.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log_path.read_text()
    assert proc.returncode in (0, -15), text[-3000:]
    assert text.count("Application shutdown complete") == workers, text[-3000:]

    results = Counter((kind, result) for kind, _, result in outcomes)
    assert set(results) <= {("steady", "200"), ("long", "200")}, results  # nothing dropped, no 5xx
    assert results[("long", "200")] == 2, results
    assert results[("steady", "200")] > 10, results  # load was running when the signal came
    # "At once": the first health check after the signal that saw it (the supervisor's forwarding included).
    assert not_ready_at and not_ready_at[0] - signalled_at < 2.0, "readiness did not turn off at once"
    stopped_listening = signalled_at + DRAIN_S
    assert all(at > stopped_listening for kind, at, _ in outcomes if kind == "long")  # finished after the close

    # Every answer is in the prediction log: it was written before the process exited.
    with sqlite3.connect(tmp_path / "data" / "mlgate.db") as db:
        logged = db.execute("SELECT count(*) FROM prediction_log WHERE status = 200").fetchone()[0]
    answered = sum(results.values()) + 1  # + the request sent during the drain
    assert logged == answered, (logged, answered)  # warm-ups bypass the data plane: never logged
