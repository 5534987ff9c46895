"""The model repository and runtimes: broken model dirs, the python runtime, errors inside models."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from tests.conftest import ClientFactory
from tests.fakes import (
    ERROR_MODEL,
    TEXT_MODEL,
    WRONG_BATCH_MODEL,
    sum_model,
    write_python_model,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def mixed_repo(tmp_path: Path, examples_repo: Path) -> Path:
    """A working sklearn model, a python model, and four broken model dirs."""
    import shutil

    shutil.copytree(examples_repo / "breast-cancer", tmp_path / "breast-cancer")
    sum_model(tmp_path)
    (tmp_path / "no-artifact").mkdir()
    (tmp_path / "no-artifact" / "model.toml").write_text(
        'name = "no-artifact"\nruntime = "sklearn"\nartifact = "gone.joblib"\n')
    (tmp_path / "bad-toml").mkdir()
    (tmp_path / "bad-toml" / "model.toml").write_text('name = "bad-toml\nruntime = ')
    (tmp_path / "bad-field").mkdir()
    (tmp_path / "bad-field" / "model.toml").write_text(
        'name = "bad-field"\nruntime = "sklearn"\nartifact = "../../etc/passwd"\n')
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "model.joblib").write_bytes(b"this is not a pickle")
    (tmp_path / "garbage" / "model.toml").write_text(
        'name = "garbage"\nruntime = "sklearn"\nartifact = "model.joblib"\n')
    (tmp_path / "not-a-model").mkdir()  # no model.toml: ignored
    return tmp_path


async def test_broken_model_dirs_do_not_stop_the_others(
    mixed_repo: Path, app_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    async with app_client(mixed_repo) as client:
        assert (await client.get("/v2/health/ready")).status_code == 200
        for name in ("breast-cancer", "sum"):
            assert (await client.get(f"/v2/models/{name}/ready")).status_code == 200
        for name in ("no-artifact", "bad-toml", "bad-field", "garbage"):
            response = await client.get(f"/v2/models/{name}/ready")
            assert response.status_code == 400, name
            assert response.json()["ready"] is False
            infer = await client.post(f"/v2/models/{name}/infer", json={"inputs": []})
            assert infer.status_code == 503 and infer.json()["code"] == "model_not_ready"
            assert "Retry-After" in infer.headers
        assert (await client.get("/v2/models/not-a-model/ready")).status_code == 404
    logged = "\n".join(str(r.msg) for r in caplog.records)
    for directory in ("no-artifact", "bad-toml", "bad-field", "garbage"):
        assert str(mixed_repo / directory) in logged, directory
    assert "gone.joblib" in logged and "artifact" in logged


async def test_strict_readiness_reports_a_broken_model(mixed_repo: Path, app_client: ClientFactory) -> None:
    async with app_client(mixed_repo, strict_readiness=True) as client:
        response = await client.get("/v2/health/ready")
        assert response.status_code == 400 and response.json() == {"ready": False}


async def test_python_runtime_gets_parameters(tmp_path: Path, app_client: ClientFactory) -> None:
    sum_model(tmp_path, offset=0.5)
    async with app_client(tmp_path) as client:
        body = {"parameters": {"scale": 2},
                "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]}
        response = await client.post("/v2/models/sum/infer", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == [13.0, 31.0]
        meta = (await client.get("/v2/models/sum")).json()
        assert meta["platform"] == "python"


async def test_bytes_tensors_round_trip(tmp_path: Path, app_client: ClientFactory) -> None:
    write_python_model(tmp_path, "text", TEXT_MODEL,
                       '[[inputs]]\nname = "text"\ndatatype = "BYTES"\nshape = [-1]\n',
                       '[[outputs]]\nname = "upper"\ndatatype = "BYTES"\nshape = [-1]\n'
                       '[[outputs]]\nname = "length"\ndatatype = "INT32"\nshape = [-1]\n')
    async with app_client(tmp_path) as client:
        body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["héllo", "ab"]}]}
        response = await client.post("/v2/models/text/infer", json=body)
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        # BYTES reach the model as bytes, and bytes.upper() changes ASCII letters only.
        assert outputs["upper"] == {"name": "upper", "datatype": "BYTES", "shape": [2], "data": ["HéLLO", "AB"]}
        assert outputs["length"]["data"] == [6, 2]  # UTF-8 bytes
        v1 = await client.post("/v1/models/text:predict", json={"instances": ["x"]})
        assert v1.json() == {"predictions": [{"upper": "X", "length": 1}]}


@pytest.mark.parametrize("source", [ERROR_MODEL, WRONG_BATCH_MODEL], ids=["raises", "wrong-batch"])
async def test_model_failure_is_a_500_without_details_and_logged_with_the_request_id(
    tmp_path: Path, app_client: ClientFactory, caplog: pytest.LogCaptureFixture, source: str
) -> None:
    write_python_model(tmp_path, "boom", source, '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n',
                       '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n')
    caplog.set_level(logging.ERROR)
    async with app_client(tmp_path) as client:
        body = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}]}
        response = await client.post("/v2/models/boom/infer", json=body, headers={"X-Request-ID": "trace-me-42"})
        assert response.status_code == 500
        error = response.json()
        assert error["code"] == "model_error"
        assert "secret" not in response.text and "Traceback" not in response.text and "/srv" not in response.text
        assert response.headers["x-request-id"] == "trace-me-42"
        # The server is still fine afterwards.
        assert (await client.get("/v2/health/ready")).status_code == 200
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert failures, "the failure must be logged"
    assert any("trace-me-42" in str(r.msg) for r in failures)


async def test_httpx_client_unaffected(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/models/breast-cancer/ready")).status_code == 200
