"""The inference engine over real HTTP: backpressure (503 + Retry-After), deadlines (504), /metrics, merging."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.datasets import load_breast_cancer

from mlgate.errors import ModelLoadError
from mlgate.model.manifest import read_manifest
from mlgate.settings import Settings
from tests.engine_support import INFER, one_row, queue_depth, sample, serve, until
from tests.fakes import gated_model, open_gate, started, sum_model

pytestmark = pytest.mark.anyio

async def test_a_full_queue_answers_503_with_retry_after(tmp_path: Path) -> None:
    model = gated_model(tmp_path, extra="[batching]\nmax_queue_size = 2\n")
    async with serve(tmp_path) as (app, client):
        try:
            held = [asyncio.create_task(client.post(INFER, json=one_row(1)))]
            await until(lambda: len(started(model)) == 1)
            held += [asyncio.create_task(client.post(INFER, json=one_row(v))) for v in (2, 3)]
            await until(lambda: queue_depth(app) == 2)
            metrics = (await client.get("/metrics")).text
            assert sample(metrics, "mlgate_queue_depth", model="gated", version="1") == 2.0
            refused = await client.post(INFER, json=one_row(4))
            assert refused.status_code == 503
            assert refused.json()["code"] == "queue_full" and "max_queue_size" in refused.json()["error"]
            assert refused.headers["retry-after"] == "1"
        finally:
            open_gate(model)
        answers = await asyncio.gather(*held)
        assert [a.json()["outputs"][0]["data"] for a in answers] == [[2.0], [4.0], [6.0]]


async def test_the_timeout_header_gives_504_to_a_running_and_to_a_queued_request(tmp_path: Path) -> None:
    model = gated_model(tmp_path)
    async with serve(tmp_path) as (app, client):
        try:
            # 2 s leaves the first request time to reach the model even on a busy machine; the test waits
            # for that, so this 504 is one of a request inside the model, not in the queue.
            task = asyncio.create_task(client.post(INFER, json=one_row(1), headers={"X-Request-Timeout-Ms": "2000"}))
            await until(lambda: len(started(model)) == 1)
            running = await task
            assert running.status_code == 504
            assert running.json()["code"] == "deadline_exceeded" and "2000 ms" in running.json()["error"]
            queued = await client.post(INFER, json=one_row(2), headers={"X-Request-Timeout-Ms": "50"})
            assert queued.status_code == 504
            assert queue_depth(app) == 0  # the timed-out request left the queue
            assert [value for _, value in started(model)] == [1]  # and never reached the model
        finally:
            open_gate(model)
        assert (await client.post(INFER, json=one_row(3))).json()["outputs"][0]["data"] == [6.0]


@pytest.mark.parametrize("where", ["manifest", "settings"])
async def test_the_header_cannot_raise_the_models_timeout(tmp_path: Path, where: str) -> None:
    model = gated_model(tmp_path, extra="timeout_ms = 100\n" if where == "manifest" else "")
    settings = {"request_timeout_ms": 100.0} if where == "settings" else {}
    async with serve(tmp_path, **settings) as (_, client):
        try:
            response = await client.post(INFER, json=one_row(1), headers={"X-Request-Timeout-Ms": "600000"})
            assert response.status_code == 504 and "100 ms" in response.json()["error"]
        finally:
            open_gate(model)


@pytest.mark.parametrize("value", ["abc", "0", "-5", "nan", "inf", ""])
async def test_a_bad_timeout_header_is_a_400(tmp_path: Path, value: str) -> None:
    sum_model(tmp_path)
    body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    async with serve(tmp_path) as (_, client):
        for path, payload in (("/v2/models/sum/infer", body), ("/v1/models/sum:predict", {"instances": [[1, 2, 3]]})):
            response = await client.post(path, json=payload, headers={"X-Request-Timeout-Ms": value})
            assert response.status_code == 400, (path, response.text)
            assert response.json()["field"] == "headers.x-request-timeout-ms"
        ok = await client.post("/v1/models/sum:predict", json={"instances": [[1, 2, 3]]},
                               headers={"X-Request-Timeout-Ms": "5000"})
        assert ok.status_code == 200


async def test_metrics_count_requests_batches_waits_and_compute(tmp_path: Path) -> None:
    model = gated_model(tmp_path, extra="[batching]\nmax_batch_size = 8\nmax_queue_delay_ms = 1.0\n")
    async with serve(tmp_path) as (app, client):
        try:
            first = asyncio.create_task(client.post(INFER, json=one_row(1)))
            await until(lambda: len(started(model)) == 1)
            merged = [asyncio.create_task(client.post(INFER, json=one_row(v))) for v in (2, 3, 4, 5)]
            await until(lambda: queue_depth(app) == 4)
        finally:
            open_gate(model)
        answers = await asyncio.gather(first, *merged)
        assert [a.json()["outputs"][0]["data"] for a in answers] == [[2.0], [4.0], [6.0], [8.0], [10.0]]
        bad = await client.post(INFER, json={"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32",
                                                         "data": [1]}]})
        assert bad.status_code == 400
        assert (await client.post("/v2/models/no-such-model/infer", json=one_row(1))).status_code == 404
        response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    labels = {"model": "gated", "version": "1"}
    assert sample(text, "mlgate_requests_total", status="200", **labels) == 5.0
    assert sample(text, "mlgate_requests_total", status="400", **labels) == 1.0
    assert sample(text, "mlgate_batch_size_count", **labels) == 2.0  # the first alone, then 4 merged
    assert sample(text, "mlgate_batch_size_sum", **labels) == 5.0
    assert sample(text, "mlgate_queue_wait_seconds_count", **labels) == 5.0
    assert sample(text, "mlgate_compute_seconds_count", **labels) == 2.0
    assert sample(text, "mlgate_queue_depth", **labels) == 0.0
    assert "no-such-model" not in text


async def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    sum_model(tmp_path)
    async with serve(tmp_path, metrics=False) as (_, client):
        assert (await client.get("/metrics")).status_code == 404


async def test_a_dead_collector_fails_queued_requests_with_a_json_503(tmp_path: Path) -> None:
    model = gated_model(tmp_path, extra="[batching]\nmax_batch_size = 4\n")
    async with serve(tmp_path) as (app, client):
        try:
            running = asyncio.create_task(client.post(INFER, json=one_row(1)))
            await until(lambda: len(started(model)) == 1)
            queued = asyncio.create_task(client.post(INFER, json=one_row(2)))
            await until(lambda: queue_depth(app) == 1)
            app.state.mlgate.dataplane.registry.get("gated").executor._collector.cancel()
            response = await queued
            assert response.status_code == 503 and response.json()["code"] == "batcher_stopped"
            assert "retry-after" in response.headers
            later = await client.post(INFER, json=one_row(3))
            assert later.status_code == 503 and later.json()["code"] == "batcher_stopped"
        finally:
            open_gate(model)
        assert (await running).status_code == 200


async def test_concurrent_mixed_requests_match_scikit_learn(examples_repo: Path) -> None:
    """breast-cancer batches (max_batch_size 64); sizes 1-150 rows, so some requests are split."""
    data = load_breast_cancer().data
    model = joblib.load(examples_repo / "breast-cancer" / "model.joblib")
    rng = np.random.default_rng(7)
    spans = [(int(rng.integers(0, 400)), int(rng.choice([1, 1, 2, 5, 17, 64, 65, 150]))) for _ in range(40)]
    async with serve(examples_repo) as (_, client):
        async def ask(start: int, rows: int) -> httpx.Response:
            body = {"inputs": [{"name": "features", "shape": [rows, 30], "datatype": "FP64",
                                "data": data[start:start + rows].ravel().tolist()}]}
            return await client.post("/v2/models/breast-cancer/infer", json=body)

        answers = await asyncio.gather(*(ask(start, rows) for start, rows in spans))
        text = (await client.get("/metrics")).text
    for (start, rows), answer in zip(spans, answers, strict=True):
        assert answer.status_code == 200, answer.text
        outputs = {o["name"]: o for o in answer.json()["outputs"]}
        rows_x = data[start:start + rows]
        assert outputs["predict"]["data"] == model.predict(rows_x).tolist()
        np.testing.assert_allclose(np.array(outputs["predict_proba"]["data"]).reshape(rows, 2),
                                   model.predict_proba(rows_x), rtol=1e-12, atol=0)
    labels = {"model": "breast-cancer", "version": "1"}
    assert sample(text, "mlgate_batch_size_sum", **labels) == sum(rows for _, rows in spans)
    assert sample(text, "mlgate_requests_total", status="200", **labels) == 40.0


@pytest.mark.parametrize(("extra", "problem"), [
    ("[batching]\nmax_batch_size = 64\npreferred_batch_sizes = [128]\n", "preferred batch size 128"),
    ("[batching]\npreferred_batch_sizes = [2]\n", "needs max_batch_size"),
    ("[batching]\nmax_queue_size = 0\n", "batching.max_queue_size"),
    ("[batching]\nmax_queue_delay = 2\n", "batching.max_queue_delay"),
    ("instances = -1\n", "instances"),
    ("timeout_ms = 0\n", "timeout_ms"),
])
def test_engine_manifest_keys_are_checked(tmp_path: Path, extra: str, problem: str) -> None:
    head = 'name = "m"\nruntime = "sklearn"\nartifact = "m.joblib"\n'
    top, _, table = extra.partition("[batching]")
    (tmp_path / "model.toml").write_text(head + top + ("[batching]" + table if table else ""))
    with pytest.raises(ModelLoadError, match=problem):
        read_manifest(tmp_path)


def test_engine_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLGATE_REQUEST_TIMEOUT_MS", "250")
    monkeypatch.setenv("MLGATE_MAX_QUEUE_SIZE", "7")
    monkeypatch.setenv("MLGATE_WORKER_START_TIMEOUT_S", "30")
    monkeypatch.setenv("MLGATE_METRICS", "false")
    settings = Settings.load()
    assert (settings.request_timeout_ms, settings.max_queue_size) == (250.0, 7)
    assert settings.worker_start_timeout_s == 30.0 and settings.metrics == "off"  # false still turns it off
    monkeypatch.setenv("MLGATE_MAX_QUEUE_SIZE", "0")
    with pytest.raises(ValidationError, match="max_queue_size"):
        Settings.load()


async def test_an_unloaded_model_leaves_the_metrics(tmp_path: Path) -> None:
    sum_model(tmp_path)
    body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    async with serve(tmp_path) as (app, client):
        assert (await client.post("/v2/models/sum/infer", json=body)).status_code == 200
        assert 'model="sum"' in (await client.get("/metrics")).text
        registry = app.state.mlgate.dataplane.registry
        await registry.unload_model(registry.get("sum"))
        assert 'model="sum"' not in (await client.get("/metrics")).text
