"""Worker processes (manifest ``instances``): real child processes, killed with SIGKILL under load."""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from mlgate.workers.protocol import encode, read_message
from tests.engine_support import INFER, one_row, sample, serve, until
from tests.fakes import (
    ERROR_MODEL,
    INVALID_INPUT_MODEL,
    UNPICKLABLE_ERROR_MODEL,
    gated_model,
    open_gate,
    started,
    write_python_model,
)

pytestmark = pytest.mark.anyio


def _copy_model(src: Path, dest_root: Path, extra: str) -> Path:
    import shutil

    dest = dest_root / src.name
    shutil.copytree(src, dest)
    manifest = dest / "model.toml"
    text = manifest.read_text()
    head, _, tail = text.partition("[[inputs]]")
    manifest.write_text(head + extra + "\n[[inputs]]" + tail)
    return dest


async def _decode(parts: list[bytes | memoryview]) -> object:
    reader = asyncio.StreamReader()
    reader.feed_data(b"".join(parts))
    reader.feed_eof()
    return await read_message(reader)


async def test_tensors_cross_as_out_of_band_buffers_and_nothing_else_unpickles() -> None:
    arrays = {
        "f32": np.arange(12, dtype=np.float32).reshape(3, 4),
        "f64_strided": np.arange(20.0).reshape(4, 5)[:, ::2],
        "i64": np.array([1, -2, 3], dtype=np.int64),
        "bool": np.array([True, False]),
        "bytes": np.array([b"a", "é".encode()], dtype=object),
        "empty": np.zeros((0, 3), dtype=np.float16),
    }
    parts = encode({"seq": 1, "outputs": arrays, "params": {"k": [1, "two", 3.0, None]}})
    assert any(isinstance(p, memoryview) and p.nbytes == 48 for p in parts)  # f32 went out of band
    message = await _decode(parts)
    assert isinstance(message, dict) and message["params"] == {"k": [1, "two", 3.0, None]}
    for name, array in arrays.items():
        np.testing.assert_array_equal(message["outputs"][name], array)
        assert message["outputs"][name].dtype == array.dtype

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo pwned",))

    with pytest.raises(pickle.UnpicklingError, match="may not name"):
        await _decode(encode({"outputs": Exploit()}))
    with pytest.raises(pickle.UnpicklingError, match="not a worker message"):
        await _decode([b"predicting [1. 2.]\n", *parts])  # stray output on the pipe


async def test_breast_cancer_in_two_workers_matches_scikit_learn(tmp_path: Path, examples_repo: Path) -> None:
    _copy_model(examples_repo / "breast-cancer", tmp_path, "instances = 2\n")
    data = load_breast_cancer().data
    model = joblib.load(examples_repo / "breast-cancer" / "model.joblib")
    async with serve(tmp_path) as (app, client):
        pool = app.state.mlgate.dataplane.registry.get("breast-cancer").executor.inner
        assert len(pool.pids) == 2 and os.getpid() not in pool.pids
        meta = (await client.get("/v2/models/breast-cancer")).json()
        assert meta["inputs"] == [{"name": "features", "datatype": "FP64", "shape": [-1, 30]}]

        async def ask(start: int, rows: int) -> list[int]:
            body = {"inputs": [{"name": "features", "shape": [rows, 30], "datatype": "FP64",
                                "data": data[start:start + rows].ravel().tolist()}]}
            response = await client.post("/v2/models/breast-cancer/infer", json=body)
            assert response.status_code == 200, response.text
            predictions: list[int] = response.json()["outputs"][0]["data"]
            return predictions

        spans = [(i * 13, 1 + (i * 7) % 90) for i in range(30)]
        answers = await asyncio.gather(*(ask(s, r) for s, r in spans))
    for (start, rows), answer in zip(spans, answers, strict=True):
        assert answer == model.predict(data[start:start + rows]).tolist()


@pytest.mark.parametrize("source", [ERROR_MODEL, UNPICKLABLE_ERROR_MODEL], ids=["raises", "unpicklable"])
async def test_a_model_error_crosses_as_data(tmp_path: Path, source: str, caplog: pytest.LogCaptureFixture) -> None:
    write_python_model(tmp_path, "boom", source, '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n',
                       '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n', "instances = 1\n")
    caplog.set_level(logging.ERROR)
    async with serve(tmp_path) as (app, client):
        pids = app.state.mlgate.dataplane.registry.get("boom").executor.inner.pids
        for _ in range(2):  # the worker survives its model's exception
            response = await client.post("/v2/models/boom/infer", json=one_row(1), headers={"X-Request-ID": "rq-9"})
            assert response.status_code == 500 and response.json()["code"] == "model_error"
            assert "secret" not in response.text and "Unpicklable" not in response.text
        assert app.state.mlgate.dataplane.registry.get("boom").executor.inner.pids == pids
    logged = "\n".join(str(r.msg) for r in caplog.records if r.levelno >= logging.ERROR)
    assert "rq-9" in logged and "Traceback" in logged  # the worker's traceback, as text, under the request id


async def test_a_4xx_raised_in_a_worker_keeps_its_status(tmp_path: Path) -> None:
    write_python_model(tmp_path, "picky", INVALID_INPUT_MODEL,
                       '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n',
                       '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n', "instances = 1\n")
    async with serve(tmp_path) as (_, client):
        response = await client.post("/v2/models/picky/infer", json=one_row(1))
    assert response.status_code == 400
    assert response.json() == {"error": "x must be sorted", "code": "invalid_input", "field": "inputs[x]"}


async def test_a_model_that_fails_to_load_in_its_workers_is_failed_with_the_reason(tmp_path: Path) -> None:
    write_python_model(tmp_path, "broken", "raise ImportError('no module named torchvision')\n",
                       '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n',
                       '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n', "instances = 2\n")
    async with serve(tmp_path) as (app, client):
        handle = app.state.mlgate.dataplane.registry.get("broken")
        assert handle.state.value == "FAILED" and "torchvision" in (handle.reason or "")
        response = await client.post("/v2/models/broken/infer", json=one_row(1))
        assert response.status_code == 503 and response.json()["code"] == "model_not_ready"


async def test_a_killed_worker_fails_its_request_with_503_and_is_restarted(tmp_path: Path) -> None:
    model = gated_model(tmp_path, extra="instances = 2\n")
    async with serve(tmp_path) as (app, client):
        pool = app.state.mlgate.dataplane.registry.get("gated").executor.inner
        first_pids = set(pool.pids)
        try:
            load = [asyncio.create_task(client.post(INFER, json=one_row(v))) for v in range(1, 9)]
            await until(lambda: len(started(model)) == 2)  # both workers hold a request, six wait
            (victim_pid, victim_value), (_, survivor_value) = started(model)
            os.kill(victim_pid, signal.SIGKILL)
            await until(lambda: load[victim_value - 1].done())
            lost = load[victim_value - 1].result()
            assert lost.status_code == 503 and lost.json()["code"] == "worker_died"
            assert lost.headers["retry-after"] == "1"
        finally:
            open_gate(model)
        answers = await asyncio.gather(*load)
        for value, answer in enumerate(answers, start=1):
            if value != victim_value:
                assert answer.status_code == 200, answer.text
                assert answer.json()["outputs"][0]["data"] == [2.0 * value]
        await until(lambda: len(pool.pids) == 2)
        new_pids = set(pool.pids)
        assert victim_pid not in new_pids and len(new_pids & first_pids) == 1
        later = await asyncio.gather(*(client.post(INFER, json=one_row(v)) for v in (10, 11, 12)))
        assert [r.json()["outputs"][0]["data"] for r in later] == [[20.0], [22.0], [24.0]]
        text = (await client.get("/metrics")).text
        assert sample(text, "mlgate_worker_restarts_total", model="gated", version="1") == 1.0
        assert sample(text, "mlgate_requests_total", model="gated", version="1", status="503") == 1.0
    assert survivor_value != victim_value
    for pid in new_pids:  # unloading stopped every worker
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_a_model_that_prints_does_not_break_the_protocol(tmp_path: Path) -> None:
    chatty = 'import numpy as np\n\nclass Model:\n    def predict(self, batch):\n' \
             '        print("predicting", batch["x"])\n        return {"y": batch["x"] + 1}\n'
    write_python_model(tmp_path, "chatty", chatty, '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n',
                       '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n', "instances = 1\n")
    async with serve(tmp_path) as (_, client):
        for value in (1, 2):
            response = await client.post("/v2/models/chatty/infer", json=one_row(value))
            assert response.json()["outputs"][0]["data"] == [value + 1.0]
