"""The OpenAPI document types each model's inference route from its signature, and the server agrees with it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from sklearn.datasets import load_breast_cancer

from mlgate.inference.registry import ModelRegistry
from mlgate.model.repository import scan_repository
from mlgate.web.openapi import ModelSchemas
from tests.conftest import ClientFactory
from tests.fakes import sum_model, write_python_model

pytestmark = pytest.mark.anyio

ROW = load_breast_cancer().data[0].tolist()


def _resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    assert isinstance(node, dict)
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _request_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    return _resolve(document, body["schema"]["$ref"])


async def test_every_ready_model_has_a_typed_route(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    for name in ("breast-cancer", "digits"):
        operation = document["paths"][f"/v2/models/{name}/infer"]["post"]
        assert operation["tags"] == ["Models"]
        assert operation["operationId"] == f"infer_{name.replace('-', '_')}"
    # The generic route stays, and every reference resolves.
    assert "/v2/models/{model_name}/infer" in document["paths"]
    for ref in _refs(document):
        _resolve(document, ref)
    operation_ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))


async def test_breast_cancer_schema_names_its_features_and_labels(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    schema = _request_schema(document, "/v2/models/breast-cancer/infer")
    (features,) = schema["properties"]["inputs"]["items"]["oneOf"]
    assert features["properties"]["name"] == {"const": "features"}
    assert features["properties"]["datatype"] == {"const": "FP64"}
    assert "mean radius" in features["description"] and "worst fractal dimension" in features["description"]
    assert "Labels by class index: 0 `malignant`, 1 `benign`" in (
        document["paths"]["/v2/models/breast-cancer/infer"]["post"]["description"])
    digits = _request_schema(document, "/v2/models/digits/infer")["properties"]["inputs"]["items"]["oneOf"][0]
    assert "grayscale 8x8 image per row" in digits["description"] and "0..16" in digits["description"]


BAD_BODIES = [
    {"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": ROW}]},  # wrong datatype
    {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": ROW}]},  # wrong input name
    {"inputs": [{"name": "features", "shape": [1, 29], "datatype": "FP64", "data": ROW[:29]}]},  # 29 columns
    {"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP64", "data": [ROW[:29] + ["a"]]}]},
    {"inputs": []},
    {"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP64", "data": ROW}],
     "outputs": [{"name": "nope"}]},
]


async def test_the_schema_and_the_server_agree(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    validator = jsonschema.Draft202012Validator(_request_schema(document, "/v2/models/breast-cancer/infer"))
    good = [
        {"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP64", "data": [ROW]}]},
        {"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP64", "data": ROW}], "id": "flat"},
        {"inputs": [{"name": "features", "shape": [2, 30], "datatype": "FP64", "data": [ROW, ROW]}],
         "outputs": [{"name": "predict_proba", "parameters": {"classification": 1}}]},
    ]
    response_schema = _resolve(document, document["paths"]["/v2/models/breast-cancer/infer"]["post"]["responses"]
                               ["200"]["content"]["application/json"]["schema"]["$ref"])
    for body in good:
        validator.validate(body)
        response = await client.post("/v2/models/breast-cancer/infer", json=body)
        assert response.status_code == 200, response.text
        jsonschema.validate(response.json(), response_schema, cls=jsonschema.Draft202012Validator)
    for body in BAD_BODIES:
        assert not validator.is_valid(body), body
        response = await client.post("/v2/models/breast-cancer/infer", json=body)
        assert response.status_code == 400, (body, response.text)


async def test_each_route_example_is_valid_and_answered(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    for name in ("breast-cancer", "digits"):
        path = f"/v2/models/{name}/infer"
        content = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        jsonschema.validate(content["example"], _request_schema(document, path),
                            cls=jsonschema.Draft202012Validator)
        response = await client.post(path, json=content["example"])
        assert response.status_code == 200, response.text


async def test_versions_get_their_own_routes_and_failed_models_none(
    tmp_path: Path, examples_repo: Path, app_client: ClientFactory
) -> None:
    shutil.copytree(examples_repo / "breast-cancer", tmp_path / "bc1")
    shutil.copytree(examples_repo / "breast-cancer", tmp_path / "bc2")
    manifest = tmp_path / "bc2" / "model.toml"
    manifest.write_text(manifest.read_text().replace('version = "1"', 'version = "2"'))
    write_python_model(tmp_path, "broken", "raise ImportError('no')\n",
                       '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1, 1]\n',
                       '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n')
    async with app_client(tmp_path) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/v2/models/breast-cancer/versions/1/infer", "/v2/models/breast-cancer/versions/2/infer",
            "/v2/models/breast-cancer/infer"} <= set(paths)
    assert "version 2" in paths["/v2/models/breast-cancer/infer"]["post"]["description"]
    assert not [p for p in paths if "broken" in p]


async def test_the_document_follows_the_models_loaded(tmp_path: Path) -> None:
    registry = ModelRegistry()
    built = 0

    def base() -> dict[str, Any]:
        nonlocal built
        built += 1
        return {"openapi": "3.1.0", "paths": {}}

    schemas = ModelSchemas(base, registry)
    assert schemas.document()["paths"] == {}
    sum_model(tmp_path)
    (source,) = scan_repository(tmp_path)
    handle = await registry.load_model(source)
    document = schemas.document()
    assert "/v2/models/sum/infer" in document["paths"]
    assert schemas.document() is document  # cached while the models stay the same
    await registry.unload_model(handle)
    assert schemas.document()["paths"] == {}
    assert built == 1
