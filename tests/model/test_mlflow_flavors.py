"""MLflow directories of the framework flavors, as `mlflow.<flavor>.save_model` writes them, served without a
model.toml by the runtime of their framework; the answers equal the framework's in this process."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris

from tests.conftest import ClientFactory

pytestmark = pytest.mark.anyio

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras in this process runs on PyTorch, as the app's


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    import keras
    import lightgbm as lgb
    import mlflow
    import torch
    import xgboost as xgb

    root = tmp_path_factory.mktemp("mlflow-flavors")
    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    models: dict[str, Any] = {
        "xgb": xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(x, y),
        "lgb-booster": lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1}, lgb.Dataset(x, y), 5),
        "lgb-sklearn": lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y),
        "keras": keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")]),
        "torch": torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1)).eval(),
    }
    with warnings.catch_warnings():  # MLflow warns about signatures, pip requirements and local versions
        warnings.simplefilter("ignore")
        mlflow.xgboost.save_model(models["xgb"], str(root / "xgb"))
        mlflow.lightgbm.save_model(models["lgb-booster"], str(root / "lgb-booster"))
        mlflow.lightgbm.save_model(models["lgb-sklearn"], str(root / "lgb-sklearn"))
        mlflow.keras.save_model(models["keras"], str(root / "keras"))
        mlflow.pytorch.save_model(models["torch"], str(root / "torch"), serialization_format="pt2", input_example=x[:2])
        mlflow.pytorch.save_model(models["torch"], str(root / "torch-pickle"), serialization_format="pickle")
    return root, models


async def _infer(client: Any, name: str, rows: np.ndarray) -> dict[str, np.ndarray]:
    metadata = (await client.get(f"/v2/models/{name}")).json()
    (spec,) = metadata["inputs"]
    body = {"inputs": [{"name": spec["name"], "shape": list(rows.shape), "datatype": spec["datatype"],
                        "data": rows.ravel().tolist()}]}
    response = await client.post(f"/v2/models/{name}/infer", json=body)
    assert response.status_code == 200, response.text
    return {o["name"]: np.reshape(o["data"], o["shape"]) for o in response.json()["outputs"]}


async def test_framework_flavors_are_served_by_their_runtime(
    saved: tuple[Path, dict[str, Any]], app_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    import torch

    root, models = saved
    rows = load_iris().data[::15].astype(np.float32)
    caplog.set_level(logging.ERROR)
    async with app_client(root) as client:
        xgb_out = await _infer(client, "xgb", rows)
        np.testing.assert_allclose(xgb_out["predict_proba"], models["xgb"].predict_proba(rows), atol=1e-5)
        booster = await _infer(client, "lgb-booster", rows)
        np.testing.assert_allclose(booster["predict_proba"], models["lgb-booster"].predict(rows), atol=1e-9)
        wrapper = await _infer(client, "lgb-sklearn", rows)
        assert wrapper["predict"].tolist() == models["lgb-sklearn"].predict(rows).tolist()
        keras_out = await _infer(client, "keras", rows)
        np.testing.assert_allclose(next(iter(keras_out.values())), models["keras"].predict_on_batch(rows), atol=1e-5)
        torch_out = await _infer(client, "torch", rows)
        with torch.inference_mode():
            expected = models["torch"](torch.from_numpy(rows)).numpy()
        np.testing.assert_allclose(next(iter(torch_out.values())), expected, atol=1e-5)
        pickled = await client.get("/v2/models/torch-pickle/ready")
        assert pickled.json()["ready"] is False
    reasons = [r.getMessage() for r in caplog.records if "model failed to load" in r.getMessage()]
    assert len(reasons) == 1 and "serialization_format='pt2'" in reasons[0], reasons
