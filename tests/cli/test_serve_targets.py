"""`mlgate serve` on one model: a bare artifact file (its signature read from the file) or one model directory;
and a repository with nothing to serve refused at start with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mlgate.cli.main import app
from tests.conftest import serve_app
from tests.processes import free_port

pytestmark = pytest.mark.anyio


def test_serve_a_joblib_file_as_one_command(examples_repo: Path, tmp_path: Path) -> None:
    artifact = tmp_path / "cancer.joblib"
    shutil.copy(examples_repo / "breast-cancer" / "model.joblib", artifact)
    port = free_port()
    env = {"MLGATE_DATA_DIR": str(tmp_path / "data"), "MLGATE_ANONYMOUS_MODELS": '["*"]', "MLGATE_WORKERS": "1",
           "MLGATE_LOG_FORMAT": "json"}
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mlgate", "serve", str(artifact), "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})
        try:
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline
                time.sleep(0.2)
            metadata = httpx.get(f"http://127.0.0.1:{port}/v2/models/cancer").json()
            assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 30]}]
            body = {"inputs": [{"name": "input-0", "shape": [1, 30], "datatype": "FP64", "data": [0.0] * 30}]}
            answer = httpx.post(f"http://127.0.0.1:{port}/v2/models/cancer/infer", json=body)
            assert answer.status_code == 200, answer.text
            assert {o["name"] for o in answer.json()["outputs"]} == {"predict", "predict_proba"}
        finally:
            proc.terminate()
            proc.wait(timeout=20)


async def test_an_onnx_file_and_a_model_directory_are_served_alone(examples_repo: Path) -> None:
    async with serve_app(examples_repo / "digits" / "model.onnx") as client:
        metadata = (await client.get("/v2/models/model")).json()
        assert metadata["platform"] == "onnxruntime_onnx"
        assert metadata["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 64]}]
    async with serve_app(examples_repo / "breast-cancer") as client:
        assert (await client.get("/v2/models/breast-cancer/ready")).status_code == 200
        assert (await client.get("/v2/models/digits")).status_code == 404


def test_a_repository_with_nothing_to_serve_is_an_error_at_start(tmp_path: Path) -> None:
    empty = tmp_path / "models"
    empty.mkdir()
    runner = CliRunner(env={"MLGATE_DATA_DIR": str(tmp_path / "data")})
    result = runner.invoke(app, ["serve", str(empty)])
    assert result.exit_code == 2, result.output
    assert "no model in" in result.output and "model.toml" in result.output
    flag = runner.invoke(app, ["serve", "--model-repository", str(empty)])
    assert flag.exit_code == 2 and "no model in" in flag.output
    caffe = tmp_path / "model.caffemodel"
    caffe.write_bytes(b"not served")
    unknown = runner.invoke(app, ["serve", str(caffe)])
    assert unknown.exit_code == 2 and "no runtime serves .caffemodel files" in unknown.output
    assert "MLGATE_ALLOW_EMPTY_REPOSITORY" in result.output
    missing = runner.invoke(app, ["serve", str(tmp_path / "nope.onnx")])
    assert missing.exit_code == 2 and "not a directory or a model file" in missing.output


async def test_a_torch_export_file_is_served_alone_with_the_signature_it_records(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    module = torch.nn.Linear(4, 2)
    program = torch.export.export(module, (torch.zeros(3, 4),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},))
    artifact = tmp_path / "linear.pt2"
    torch.export.save(program, artifact)
    rows = torch.arange(8, dtype=torch.float32).reshape(2, 4)
    with torch.inference_mode():
        expected = module(rows).tolist()
    async with serve_app(artifact) as client:
        metadata = (await client.get("/v2/models/linear")).json()
        assert [(i["datatype"], i["shape"]) for i in metadata["inputs"]] == [("FP32", [-1, 4])]
        name = metadata["inputs"][0]["name"]
        body = {"inputs": [{"name": name, "shape": [2, 4], "datatype": "FP32", "data": rows.flatten().tolist()}]}
        answer = await client.post("/v2/models/linear/infer", json=body)
        assert answer.status_code == 200, answer.text
        got = answer.json()["outputs"][0]["data"]
        assert got == pytest.approx([v for row in expected for v in row], abs=1e-5)
