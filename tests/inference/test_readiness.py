"""Readiness (GET /v2/health/ready): required models, and the drain that starts when the server is told to stop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakes import sum_model, write_python_model

BROKEN = '''
class Model:
    def load(self):
        raise RuntimeError("cannot load")

    def predict(self, batch):
        return batch
'''


def _broken(root: Path, required: bool) -> None:
    write_python_model(root, "broken", BROKEN, '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n',
                       '[[outputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n',
                       "required = true" if required else "")


@pytest.mark.anyio
@pytest.mark.parametrize("required", [True, False])
async def test_a_required_model_that_failed_keeps_the_server_out_of_rotation(
        app_client: Any, tmp_path: Path, required: bool) -> None:
    sum_model(tmp_path)
    _broken(tmp_path, required)
    async with app_client(tmp_path) as client:
        ready = await client.get("/v2/health/ready")
        assert ready.status_code == (400 if required else 200)
        assert ready.json() == {"ready": not required}
        assert (await client.get("/v2/health/live")).status_code == 200
        # The other models serve either way.
        zeros = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]}]}
        assert (await client.post("/v2/models/sum/infer", json=zeros)).status_code == 200


@pytest.mark.anyio
async def test_draining_turns_readiness_off_and_serving_goes_on(app_client: Any, tmp_path: Path) -> None:
    directory = sum_model(tmp_path)
    toml = directory / "model.toml"
    toml.write_text(toml.read_text().replace('artifact = "model.py"', 'artifact = "model.py"\nrequired = true'))
    async with app_client(tmp_path) as client:
        assert (await client.get("/v2/health/ready")).status_code == 200
        client._transport.app.state.mlgate.dataplane.drain()  # type: ignore[attr-defined]  # what SIGTERM does
        assert (await client.get("/v2/health/ready")).status_code == 503
        zeros = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
        answer = await client.post("/v2/models/sum/infer", json=zeros)
        assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [6.5]
