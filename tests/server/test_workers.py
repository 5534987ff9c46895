"""`mlgate serve --workers N`: N HTTP processes on one port, each answering with its own models."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from mlgate.server import available_cores
from mlgate.settings import Settings
from tests.processes import serve_process


def _lines(log: Path) -> list[dict[str, object]]:
    out = []
    for line in log.read_text().splitlines():
        with contextlib.suppress(ValueError):  # uvicorn's supervisor lines are not JSON
            out.append(json.loads(line))
    return out


def test_two_workers_answer_from_two_processes(examples_repo: Path, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    rows = load_breast_cancer().data[:4].tolist()
    with serve_process(examples_repo, log, {"MLGATE_WORKERS": "2"}) as url:

        def predict(i: int) -> list[dict[str, object]]:
            with httpx.Client(timeout=30) as client:  # a new connection per call
                response = client.post(f"http://{url}/v1/models/breast-cancer:predict",
                                       json={"instances": [rows[i % 4]]})
                assert response.status_code == 200, response.text
                return list(response.json()["predictions"])

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(predict, range(200)))
        # A burst of keep-alive connections (a load balancer's or a benchmark's pool opening) is spread over
        # the processes: with one shared socket, whichever process woke first accepted all of them (64 of 64).
        host, port = url.rsplit(":", 1)
        burst = [http.client.HTTPConnection(host, int(port), timeout=30) for _ in range(32)]
        for connection in burst:
            connection.connect()
        for i, connection in enumerate(burst):
            connection.request("POST", "/v1/models/breast-cancer:predict", json.dumps({"instances": [rows[0]]}),
                               {"Content-Type": "application/json", "X-Request-ID": f"burst-{i}"})
        for connection in burst:
            assert connection.getresponse().status == 200
            connection.close()
        # /metrics sums every process, whichever one answers the scrape (new connection each time).
        for _ in range(6):
            text = httpx.get(f"http://{url}/metrics", timeout=10).text
            counted = [line for line in text.splitlines() if line.startswith("mlgate_requests_total{")
                       and 'model="breast-cancer"' in line and 'status="200"' in line]
            assert len(counted) == 1 and float(counted[0].rsplit(" ", 1)[1]) == 232.0, counted
        # Same row, same answer, whichever process (probabilities up to batching's rounding).
        assert {a[0]["predict"] for a in answers[::4]} == {answers[0][0]["predict"]}
        np.testing.assert_allclose([a[0]["predict_proba"] for a in answers[::4]],
                                   [answers[0][0]["predict_proba"]] * 50, rtol=1e-6, atol=1e-12)
    lines = _lines(log)
    loaded = {line["pid"] for line in lines if line.get("event") == "models loaded"}
    answered = {line["pid"] for line in lines if line.get("event") == "request"
                and line.get("path") == "/v1/models/breast-cancer:predict"}
    assert len(loaded) == 2, loaded
    assert answered == loaded, (answered, loaded)
    # One access line per request, mlgate's own: uvicorn's access logger stays quiet in the worker processes
    # too (it once wrote a second line per request there, through the whole logging chain).
    predictions = [line for line in lines if line.get("path") == "/v1/models/breast-cancer:predict"]
    assert len(predictions) == 232, len(predictions)
    by_process = Counter(line["pid"] for line in predictions if str(line.get("request_id")).startswith("burst-"))
    assert sum(by_process.values()) == 32 and min(by_process.values()) >= 8, by_process
    assert not [line for line in lines if line.get("logger") == "uvicorn.access"]


def test_workers_setting_defaults_to_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLGATE_WORKERS", raising=False)
    assert Settings().workers == 1  # 0 = one per core, resolved at start
    assert available_cores() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("MLGATE_WORKERS", "3")
    assert Settings().workers == 3
    with pytest.raises(ValueError):
        Settings(workers=-1)
