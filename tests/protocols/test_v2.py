"""KServe V2 REST against the real app and the real example models, compared with in-process results."""

from __future__ import annotations

from pathlib import Path

import httpx
import joblib
import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import load_breast_cancer, load_digits

pytestmark = pytest.mark.anyio

ROWS = 20


@pytest.fixture(scope="module")
def cancer_rows() -> np.ndarray:
    return load_breast_cancer().data[:ROWS]


@pytest.fixture(scope="module")
def digit_rows() -> np.ndarray:
    return load_digits().data[-ROWS:].astype(np.float32)


async def test_health_and_server_metadata(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/health/live")).json() == {"live": True}
    ready = await client.get("/v2/health/ready")
    assert ready.status_code == 200 and ready.json() == {"ready": True}
    meta = (await client.get("/v2")).json()
    assert meta["name"] == "mlgate" and "classification" in meta["extensions"]


async def test_model_metadata_follows_the_manifest_and_the_onnx_graph(client: httpx.AsyncClient) -> None:
    cancer = (await client.get("/v2/models/breast-cancer")).json()
    assert cancer == {
        "name": "breast-cancer", "versions": ["1"], "platform": "sklearn",
        "inputs": [{"name": "features", "datatype": "FP64", "shape": [-1, 30]}],
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                    {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]}],
    }
    digits = (await client.get("/v2/models/digits/versions/1")).json()
    assert digits["platform"] == "onnxruntime_onnx"
    assert digits["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 64]}]
    assert [o["name"] for o in digits["outputs"]] == ["label", "probabilities"]


async def test_model_ready(client: httpx.AsyncClient) -> None:
    for path in ("/v2/models/digits/ready", "/v2/models/digits/versions/1/ready"):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.json() == {"name": "digits", "version": "1", "ready": True}


async def test_breast_cancer_matches_scikit_learn(
    client: httpx.AsyncClient, examples_repo: Path, cancer_rows: np.ndarray
) -> None:
    model = joblib.load(examples_repo / "breast-cancer" / "model.joblib")
    body = {"id": "req-7", "parameters": {"trace": True}, "inputs": [
        {"name": "features", "shape": [ROWS, 30], "datatype": "FP64", "data": cancer_rows.ravel().tolist()}]}
    response = await client.post("/v2/models/breast-cancer/infer", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"] == "req-7" and answer["model_name"] == "breast-cancer" and answer["model_version"] == "1"
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["predict"]["shape"] == [ROWS] and outputs["predict"]["datatype"] == "INT64"
    assert outputs["predict"]["data"] == model.predict(cancer_rows).tolist()
    proba = np.array(outputs["predict_proba"]["data"]).reshape(outputs["predict_proba"]["shape"])
    np.testing.assert_array_equal(proba, model.predict_proba(cancer_rows))
    # Both classes occur in these rows, so the comparison is not trivially all-zero.
    assert set(outputs["predict"]["data"]) == {0, 1}


async def test_digits_matches_onnxruntime_with_nested_data(
    client: httpx.AsyncClient, examples_repo: Path, digit_rows: np.ndarray
) -> None:
    session = ort.InferenceSession(str(examples_repo / "digits" / "model.onnx"), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {"X": digit_rows})
    nested = digit_rows.tolist()  # [20][64]: nested data instead of flat
    body = {"inputs": [{"name": "X", "shape": [ROWS, 64], "datatype": "FP32", "data": nested}]}
    response = await client.post("/v2/models/digits/versions/1/infer", json=body)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["label"]["data"] == labels.tolist()
    # The model is right on most held-in rows: a sanity check that real data went through.
    assert np.mean(labels == load_digits().target[-ROWS:]) >= 0.9
    np.testing.assert_array_equal(np.array(outputs["probabilities"]["data"], dtype=np.float32),
                                  probabilities.ravel())


async def test_outputs_selection_and_classification(client: httpx.AsyncClient, digit_rows: np.ndarray) -> None:
    body = {
        "inputs": [{"name": "X", "shape": [2, 64], "datatype": "FP32", "data": digit_rows[:2].ravel().tolist()}],
        "outputs": [{"name": "probabilities", "parameters": {"classification": 3}}],
    }
    answer = (await client.post("/v2/models/digits/infer", json=body)).json()
    assert [o["name"] for o in answer["outputs"]] == ["probabilities"]
    out = answer["outputs"][0]
    assert out["datatype"] == "BYTES" and out["shape"] == [2, 3]
    first = out["data"][0].split(":")
    assert len(first) == 3 and first[1] == first[2]  # score:index:label, labels "0".."9"
    assert int(first[1]) == int(load_digits().target[-ROWS])
    scores = [float(item.split(":")[0]) for item in out["data"][:3]]
    assert scores == sorted(scores, reverse=True)


async def test_openapi_describes_every_route(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in ("/v2/health/live", "/v2/health/ready", "/v2", "/v2/models/{model_name}",
                 "/v2/models/{model_name}/versions/{model_version}", "/v2/models/{model_name}/ready",
                 "/v2/models/{model_name}/infer", "/v2/models/{model_name}/versions/{model_version}/infer",
                 "/v1/models/{model_name}", "/v1/models/{model_name}:predict",
                 "/v1/models/{model_name}/versions/{model_version}:predict", "/v1/embeddings"):
        assert path in paths, path
    # V1 predict is documented as the path a client calls, not as the route's catch-all segment.
    assert "/v1/models/{model_spec}" not in paths
    assert paths["/v1/models/{model_name}:predict"]["post"]["requestBody"]["content"]["application/json"][
        "schema"]["$ref"] == "#/components/schemas/V1PredictRequest"
    infer_body = paths["/v2/models/{model_name}/infer"]["post"]["requestBody"]
    assert infer_body["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/InferenceRequest"
    assert "RequestInput" in schema["components"]["schemas"]
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_request_id_is_returned_and_reused(client: httpx.AsyncClient) -> None:
    fresh = await client.get("/v2/health/live")
    assert len(fresh.headers["x-request-id"]) == 32
    reused = await client.get("/v2/health/live", headers={"X-Request-ID": "abc-123"})
    assert reused.headers["x-request-id"] == "abc-123"
    hostile = await client.get("/v2/health/live", headers={"X-Request-ID": "a\tb<script>"})
    assert hostile.headers["x-request-id"] != "a\tb<script>"
