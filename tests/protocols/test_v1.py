"""KServe V1 / TF-Serving REST: same answers as V2 and as scikit-learn in-process."""

from __future__ import annotations

from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits

pytestmark = pytest.mark.anyio


async def test_model_status(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models/breast-cancer")
    assert response.status_code == 200
    assert response.json() == {"name": "breast-cancer", "ready": True,
                               "model_version_status": [{"version": "1", "state": "AVAILABLE"}]}


async def test_instances_match_scikit_learn_and_v2(client: httpx.AsyncClient, examples_repo: Path) -> None:
    rows = load_breast_cancer().data[100:120]
    model = joblib.load(examples_repo / "breast-cancer" / "model.joblib")
    response = await client.post("/v1/models/breast-cancer:predict", json={"instances": rows.tolist()})
    assert response.status_code == 200, response.text
    assert response.headers["x-model-version"] == "1"
    predictions = response.json()["predictions"]
    assert [p["predict"] for p in predictions] == model.predict(rows).tolist()
    np.testing.assert_array_equal([p["predict_proba"] for p in predictions], model.predict_proba(rows))

    v2 = await client.post("/v2/models/breast-cancer/infer", json={"inputs": [
        {"name": "features", "shape": [20, 30], "datatype": "FP64", "data": rows.ravel().tolist()}]})
    assert [p["predict"] for p in predictions] == v2.json()["outputs"][0]["data"]


async def test_columnar_inputs_and_versioned_path(client: httpx.AsyncClient) -> None:
    digits = load_digits()
    rows = digits.data[:5]
    by_rows = await client.post("/v1/models/digits:predict", json={"instances": rows.tolist()})
    by_columns = await client.post("/v1/models/digits/versions/1:predict", json={"inputs": rows.tolist()})
    named = await client.post("/v1/models/digits:predict", json={"inputs": {"X": rows.tolist()}})
    assert by_rows.status_code == by_columns.status_code == named.status_code == 200
    assert by_rows.json() == by_columns.json() == named.json()
    labels = [p["label"] for p in by_rows.json()["predictions"]]
    assert labels == digits.target[:5].tolist()


async def test_named_instances(client: httpx.AsyncClient) -> None:
    rows = load_breast_cancer().data[:3]
    response = await client.post("/v1/models/breast-cancer:predict",
                                 json={"instances": [{"features": r} for r in rows.tolist()]})
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 3
