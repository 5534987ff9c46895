"""The ONNX runtime with a string input: bytes that are not UTF-8 are the caller's error (400), not the model's
(500). A real ONNX graph (Identity on a string tensor, built with onnx.helper), served by the real app."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import pytest
from onnx import TensorProto, helper

from tests.inference.test_batch_isolation import binary_request

pytestmark = pytest.mark.anyio


def echo_model(root: Path) -> Path:
    directory = root / "echo"
    directory.mkdir(parents=True)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["same"])], "echo",
        [helper.make_tensor_value_info("text", TensorProto.STRING, [None])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, [None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(directory / "model.onnx"))
    (directory / "model.toml").write_text(
        'name = "echo"\nruntime = "onnx"\nartifact = "model.onnx"\n'
        '[[inputs]]\nname = "text"\ndatatype = "BYTES"\nshape = [-1]\n'
        '[[outputs]]\nname = "same"\ndatatype = "BYTES"\nshape = [-1]\n')
    return directory


async def test_text_that_is_not_utf8_is_a_400(app_client: Callable[..., Any], tmp_path: Path) -> None:
    echo_model(tmp_path / "repo")
    async with app_client(tmp_path / "repo") as client:
        ok = await client.post("/v2/models/echo/infer", json={
            "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["héllo"]}]})
        assert ok.status_code == 200, ok.text
        assert ok.json()["outputs"][0]["data"] == ["héllo"]
        content, headers = binary_request(b"\xff\xfe not utf-8")
        bad = await client.post("/v2/models/echo/infer", content=content, headers=headers)
        assert bad.status_code == 400, bad.text
        assert bad.json()["code"] == "invalid_input" and "UTF-8" in bad.json()["error"], bad.json()
