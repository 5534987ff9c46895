"""The response cache (manifest ``[cache]``) over real HTTP: 50 identical concurrent requests run the model
once, ``Cache-Control: no-cache`` bypasses it, other inputs or parameters miss, entries expire, a Redis cache
is shared by two servers, and hits and misses are counted in /metrics."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlgate.inference.cache import ResponseCache
from tests.conftest import ClientFactory
from tests.fakes import write_python_model

pytestmark = pytest.mark.anyio

COUNTING_MODEL = '''
import time
from pathlib import Path

class Model:
    """y = 2x; appends a line to calls.txt per call (the test counts the model's runs), after 0.2 s."""

    def predict(self, batch, parameters):
        with (Path(__file__).parent / "calls.txt").open("a") as log:
            log.write(f"{batch['x'].tolist()}\\n")
        time.sleep(0.2)
        return {"y": batch["x"] * 2 * float(parameters.get("scale", 1))}
'''


def counting_model(root: Path, cache: str = "[cache]\nenabled = true\n") -> Path:
    return write_python_model(root, "counted", COUNTING_MODEL, cache + '[[inputs]]\nname = "x"\ndatatype = "FP32"\n'
                              'shape = [-1]\n', '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n')


def runs(model_dir: Path) -> int:
    path = model_dir / "calls.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def body(x: float = 1.0, **parameters: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [x]}]}
    if parameters:
        request["parameters"] = parameters
    return request


def counted(metrics: str, result: str) -> float:
    match = re.search(rf'mlgate_cache_requests_total\{{model="counted",result="{result}",version="1"\}} ([0-9.]+)',
                      metrics)
    return float(match.group(1)) if match else 0.0


async def test_50_identical_concurrent_requests_run_the_model_once(tmp_path: Path, app_client: ClientFactory) -> None:
    model = counting_model(tmp_path / "models")
    async with app_client(tmp_path / "models") as client:
        answers = await asyncio.gather(*(client.post("/v2/models/counted/infer", json=body(3)) for _ in range(50)))
        assert all(a.status_code == 200 for a in answers)
        assert {a.text for a in answers} == {answers[0].text}
        assert answers[0].json()["outputs"][0]["data"] == [6.0]
        assert runs(model) == 1
        metrics = (await client.get("/metrics")).text
        assert counted(metrics, "miss") == 1 and counted(metrics, "hit") == 49

        assert (await client.post("/v2/models/counted/infer", json=body(3))).status_code == 200
        assert runs(model) == 1  # later too, within ttl_s
        fresh = await client.post("/v2/models/counted/infer", json=body(3), headers={"Cache-Control": "no-cache"})
        assert fresh.json()["outputs"][0]["data"] == [6.0] and runs(model) == 2
        assert (await client.post("/v2/models/counted/infer", json=body(4))).json()["outputs"][0]["data"] == [8.0]
        assert runs(model) == 3  # other inputs
        assert (await client.post("/v2/models/counted/infer", json=body(3, scale=2))).json()["outputs"][0]["data"] \
            == [12.0]
        assert runs(model) == 4  # other parameters
        v1 = await client.post("/v1/models/counted:predict", json={"instances": [3]})
        assert v1.json() == {"predictions": [6.0]} and runs(model) == 4  # same tensors through V1: a hit


async def test_entries_expire_after_ttl(tmp_path: Path, app_client: ClientFactory) -> None:
    model = counting_model(tmp_path / "models", "[cache]\nenabled = true\nttl_s = 0.3\n")
    async with app_client(tmp_path / "models") as client:
        await client.post("/v2/models/counted/infer", json=body(1))
        await client.post("/v2/models/counted/infer", json=body(1))
        assert runs(model) == 1
        await asyncio.sleep(0.4)
        await client.post("/v2/models/counted/infer", json=body(1))
        assert runs(model) == 2


async def test_a_model_without_cache_runs_every_time(tmp_path: Path, app_client: ClientFactory) -> None:
    model = counting_model(tmp_path / "models", "")
    async with app_client(tmp_path / "models") as client:
        await asyncio.gather(*(client.post("/v2/models/counted/infer", json=body(1)) for _ in range(3)))
        assert runs(model) == 3


async def test_a_redis_cache_is_shared_by_two_servers(tmp_path: Path, app_client: ClientFactory,
                                                      redis_url: str) -> None:
    model = counting_model(tmp_path / "models")
    async with app_client(tmp_path / "models", cache_storage=redis_url, data_dir=tmp_path / "a") as first, \
            app_client(tmp_path / "models", cache_storage=redis_url, data_dir=tmp_path / "b") as second:
        a = await first.post("/v2/models/counted/infer", json=body(5))
        b = await second.post("/v2/models/counted/infer", json=body(5))
        assert a.json() == b.json() and b.json()["outputs"][0]["data"] == [10.0]
        assert runs(model) == 1


def test_a_new_version_never_shares_an_old_versions_key() -> None:
    inputs = {"x": np.array([1.0], dtype=np.float32)}
    assert ResponseCache.key("m", "1", inputs, {}) != ResponseCache.key("m", "2", inputs, {})
    assert ResponseCache.key("m", "1", inputs, {}) == ResponseCache.key("m", "1", {"x": inputs["x"].copy()}, None)
    assert ResponseCache.key("m", "1", inputs, {}) != ResponseCache.key("m", "1", {"x": inputs["x"].astype("f8")}, {})
    assert ResponseCache.key("m", "1", inputs, {"progress": object()}) is None
